import type { Dispatch } from '../gpu/kernel.js';

/**
 * One dispatch over two prepared variants of a kernel: `small` while the current row count
 * (read at encode time) is at most `threshold`, else `large`. `kernel` and `bindGroup` are
 * read right after `grid()` for the same batch shape, so the three always agree.
 */
export function byRowCount(rows: () => number, threshold: number, small: Dispatch, large: Dispatch): Dispatch {
  if (small === large) return large;
  const current = (): Dispatch => (rows() <= threshold ? small : large);
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
