import { PgmError, fail } from '../errors.js';
import {
  bindings,
  constant,
  preprocess,
  structFields,
  variantKey,
  workgroupSize,
  type Binding,
  type BindingKind,
  type Defines,
  type ShaderSource,
} from './shader.js';

export interface KernelSpec {
  /** The shader (`shader(file)` for the engine's own). */
  shader: ShaderSource;
  defines?: Defines;
}

const bufferType: Record<BindingKind, GPUBufferBindingType> = {
  uniform: 'uniform',
  read: 'read-only-storage',
  write: 'storage',
};

/** A PgmError unless `given` names exactly the `declared` names; `what` says whose names they are. */
function expectNames(what: string, declared: readonly string[], given: readonly string[]): void {
  const missing = declared.filter((n) => !given.includes(n));
  const extra = given.filter((n) => !declared.includes(n));
  if (missing.length || extra.length) {
    const parts = [
      missing.length && `missing ${missing.join(', ')}`,
      extra.length && `no such ${extra.join(', ')}`,
    ].filter(Boolean);
    fail('webgpu', `${what}: ${parts.join('; ')} (declared: ${declared.join(', ')})`);
  }
}

/**
 * A compiled compute pipeline with an explicit bind-group layout, and the host side of its
 * interface read off its WGSL: buffers are bound by the shader's variable names, uniform
 * structs packed by their field names, geometry read from its constants.
 */
export class Kernel {
  private constructor(
    readonly name: string,
    readonly pipeline: GPUComputePipeline,
    readonly layout: GPUBindGroupLayout,
    /** The shader's bindings 0..n-1, read off its WGSL. */
    readonly bindings: readonly Binding[],
    /** `@workgroup_size` of its entry point. */
    readonly workgroupSize: readonly [number, number, number],
    private readonly source: ShaderSource,
    private readonly code: string,
    private readonly device: GPUDevice,
  ) {}

  static async create(device: GPUDevice, spec: KernelSpec): Promise<Kernel> {
    const name = spec.shader.name;
    const code = preprocess(spec.shader, spec.defines);
    const module = device.createShaderModule({ label: name, code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      throw new PgmError(
        'webgpu',
        `shader ${name} failed to compile: ${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}`,
      );
    }
    const declared = bindings(spec.shader, code);
    const layout = device.createBindGroupLayout({
      label: name,
      entries: declared.map(({ kind }, binding) => ({
        binding,
        visibility: GPUShaderStage.COMPUTE,
        buffer: { type: bufferType[kind] },
      })),
    });
    device.pushErrorScope('validation');
    const pipeline = await device.createComputePipelineAsync({
      label: name,
      layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: 'main' },
    });
    const error = await device.popErrorScope();
    if (error) throw new PgmError('webgpu', `pipeline ${name}: ${error.message}`);
    return new Kernel(name, pipeline, layout, declared, workgroupSize(spec.shader, code), spec.shader, code, device);
  }

  /** A module-scope constant of this variant (`const NAME = ...`, numeric defines included). */
  constant(name: string): number {
    return constant(this.source, this.code, name);
  }

  /** `values` laid out as the shader's `struct <name>` (default `Params`), each field by its name. */
  pack(values: Readonly<Record<string, number>>, struct = 'Params'): ArrayBuffer {
    const fields = structFields(this.source, this.code, struct);
    expectNames(
      `shader ${this.name}: struct ${struct}`,
      fields.map((f) => f.name),
      Object.keys(values),
    );
    const data = new ArrayBuffer(Math.max(16, Math.ceil(fields.length / 4) * 16));
    const view = new DataView(data);
    fields.forEach(({ name, type }, i) => {
      if (type === 'f32') view.setFloat32(4 * i, values[name], true);
      else if (type === 'i32') view.setInt32(4 * i, values[name], true);
      else view.setUint32(4 * i, values[name], true);
    });
    return data;
  }

  /** Build a bind group once: one buffer for each binding the shader declares, keyed by its WGSL name. */
  bind(label: string, buffers: Readonly<Record<string, GPUBuffer>>): GPUBindGroup {
    const names = this.bindings.map((b) => b.name);
    expectNames(`${label}: shader ${this.name}'s bindings`, names, Object.keys(buffers));
    return this.device.createBindGroup({
      label,
      layout: this.layout,
      entries: names.map((name, binding) => ({ binding, resource: { buffer: buffers[name] } })),
    });
  }
}

const deviceCaches = new WeakMap<GPUDevice, KernelCache>();

/** One cache of compiled kernels per device, keyed by file and variant. */
export class KernelCache {
  private readonly kernels = new Map<string, Promise<Kernel>>();
  constructor(readonly device: GPUDevice) {}

  /** The device's shared cache: models on one device (a PGM and its MDLM twin, a reload) compile each kernel once. */
  static of(device: GPUDevice): KernelCache {
    let cache = deviceCaches.get(device);
    if (!cache) deviceCaches.set(device, (cache = new KernelCache(device)));
    return cache;
  }

  get(spec: KernelSpec): Promise<Kernel> {
    const key = variantKey(spec.shader.name, spec.defines ?? {});
    let kernel = this.kernels.get(key);
    if (!kernel) {
      kernel = Kernel.create(this.device, spec);
      this.kernels.set(key, kernel);
      kernel.catch(() => this.kernels.delete(key));
    }
    return kernel;
  }
}

/** A recorded dispatch: its pipeline, its bind group (built once) and its grid for the current shapes. */
export interface Dispatch {
  kernel: Kernel;
  bindGroup: GPUBindGroup;
  grid: () => [number, number, number];
}

/**
 * One dispatch over prepared variants of a kernel, each serving row counts up to its bound
 * (the last: any count), chosen by the current row count read at encode time. `kernel` and
 * `bindGroup` are read right after `grid()` for the same batch shape, so the three always agree.
 */
export function byRowCount(rows: () => number, tiers: readonly (readonly [number, Dispatch])[]): Dispatch {
  const last = tiers[tiers.length - 1][1];
  if (tiers.every(([, d]) => d === last)) return last;
  const current = (): Dispatch => tiers.find(([most]) => rows() <= most)?.[1] ?? last;
  return {
    get kernel() {
      return current().kernel;
    },
    get bindGroup() {
      return current().bindGroup;
    },
    grid: () => current().grid(),
  };
}

/** Sees every dispatch encoded, with the grid it ran at (bench/ replays them one timestamped pass each). */
export type DispatchObserver = (dispatch: Dispatch, grid: [number, number, number]) => void;

let observer: DispatchObserver | undefined;

/** Install (or remove, with undefined) the observer of `encodeDispatches`; profiling only. */
export function observeDispatches(o: DispatchObserver | undefined): void {
  observer = o;
}

/** Encode `d` at `grid`, `reps` times (timing repeats a dispatch). */
export function encodeDispatch(
  pass: GPUComputePassEncoder,
  d: { kernel: Kernel; bindGroup: GPUBindGroup },
  grid: [number, number, number],
  reps = 1,
): void {
  pass.setPipeline(d.kernel.pipeline);
  pass.setBindGroup(0, d.bindGroup);
  for (let r = 0; r < reps; r++) pass.dispatchWorkgroups(...grid);
}

/** Encode each dispatch at its grid for the current batch shape (empty grids skipped). */
export function encodeDispatches(pass: GPUComputePassEncoder, dispatches: readonly Dispatch[]): void {
  for (const d of dispatches) {
    const grid = d.grid();
    if (grid.includes(0)) continue;
    observer?.(d, grid);
    encodeDispatch(pass, d, grid);
  }
}
