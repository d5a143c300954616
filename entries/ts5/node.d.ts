// TypeScript before 6 has no WebGPU types in lib.dom: see index.d.ts beside this file.
/// <reference types="@webgpu/types" />
export * from '../../dist/node.js';
