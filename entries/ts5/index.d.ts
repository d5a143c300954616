// TypeScript before 6 has no WebGPU types in lib.dom: its projects get them from @webgpu/types
// (package.json's "types@<6"). TypeScript 6 and 7 have them, and would see both as duplicates.
/// <reference types="@webgpu/types" />
export * from '../../dist/index.js';
