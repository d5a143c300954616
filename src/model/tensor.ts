/** A host-side tensor: row-major float32 data with a shape, as read from safetensors. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** Named model parameters, keyed by state_dict name without the `backbone.` prefix. */
export type WeightMap = Map<string, HostTensor>;

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
