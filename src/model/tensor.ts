/** A host-side tensor: row-major float32 data with a shape, as read from safetensors. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
  /** The same values as IEEE f16 bits when the file stored them so (GPU storage can stay f16). */
  half?: Uint16Array;
}

/** Named model parameters, keyed by state_dict name without the `backbone.` prefix. */
export type WeightMap = Map<string, HostTensor>;

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
