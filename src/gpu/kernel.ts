import { PgmError, fail } from '../errors.js';
import { bindingKinds, preprocess, variantKey, type BindingKind, type Defines, type ShaderSource } from './shader.js';

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

/** A compiled compute pipeline with an explicit bind-group layout. */
export class Kernel {
  private constructor(
    readonly name: string,
    readonly pipeline: GPUComputePipeline,
    readonly layout: GPUBindGroupLayout,
    /** The shader's bindings 0..n-1, read off its WGSL. */
    readonly bindings: readonly BindingKind[],
    private readonly device: GPUDevice,
  ) {}

  static async create(device: GPUDevice, spec: KernelSpec): Promise<Kernel> {
    const name = spec.shader.name;
    const code = preprocess(spec.shader, spec.defines);
    const module = device.createShaderModule({ label: name, code });
    const info = await module.getCompilationInfo();
    const errors = info.messages.filter((m) => m.type === 'error');
    if (errors.length) {
      throw new PgmError('webgpu', `shader ${name} failed to compile: ${errors.map((m) => `line ${m.lineNum}: ${m.message}`).join('; ')}`);
    }
    const bindings = bindingKinds(spec.shader, code);
    const layout = device.createBindGroupLayout({
      label: name,
      entries: bindings.map((kind, binding) => ({
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
    return new Kernel(name, pipeline, layout, bindings, device);
  }

  /** Build a bind group once; buffers in binding order, one per binding the shader declares. */
  bind(label: string, buffers: readonly GPUBuffer[]): GPUBindGroup {
    if (buffers.length !== this.bindings.length) fail('webgpu', `${label}: shader ${this.name} declares ${this.bindings.length} bindings, ${buffers.length} buffers were given`);
    return this.device.createBindGroup({
      label,
      layout: this.layout,
      entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })),
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
export function encodeDispatch(pass: GPUComputePassEncoder, d: { kernel: Kernel; bindGroup: GPUBindGroup }, grid: [number, number, number], reps = 1): void {
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
