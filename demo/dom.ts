/** The page's elements: by id, and new ones. */

export const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;

export const input = (id: string): HTMLInputElement => $<HTMLInputElement>(id);

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string,
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** A button that runs `run` (type button: it does not submit the controls' form). */
export function button(label: string, run: () => void): HTMLButtonElement {
  return Object.assign(el('button', '', label), { type: 'button', onclick: run });
}
