/** One generation on screen: the grid of positions, live text, counters and a latency chart. */
import { Vocabulary, type GenerationResult, type StepEvent } from '../src/index.js';
import { el } from './dom.js';

// Step events carry GPT-2 ids whatever the model's vocabulary: cells show GPT-2's pieces.
let gpt2: Vocabulary | undefined;
const piece = (token: number, position: number): string =>
  position === 0 ? 'BOS' : (gpt2 ??= Vocabulary.gpt2()).decode([token]);

const SVG = 'http://www.w3.org/2000/svg';

/** A token's text as it fits in a cell: whitespace made visible. */
const cellText = (piece: string): string => piece.replace(/\n/g, '↵').replace(/ /g, '·');

export class RunView {
  readonly root: HTMLElement;
  /** Every step event, for the replay. */
  readonly events: StepEvent[] = [];
  private readonly cells: HTMLElement[] = [];
  private readonly counter: HTMLElement;
  private readonly textBox: HTMLElement;
  private readonly chart: SVGSVGElement;
  private readonly chartLabel: HTMLElement;
  private readonly stepMs: number[] = [];
  private fresh: HTMLElement[] = [];
  private revealedCount = 0;

  constructor(title: string, length: number) {
    this.root = el('section', 'run');
    const head = el('div', 'run-head');
    head.append(el('h2', '', title));
    this.counter = el('span', 'counter', 'waiting');
    head.append(this.counter);
    const grid = el('div', 'grid');
    grid.dataset.testid = 'grid';
    for (let i = 0; i < length; i++) {
      const cell = el('span', 'cell');
      cell.title = `position ${i}`;
      this.cells.push(cell);
      grid.append(cell);
    }
    this.chart = document.createElementNS(SVG, 'svg');
    this.chart.classList.add('chart');
    this.chart.setAttribute('role', 'img');
    this.chart.setAttribute('aria-label', 'milliseconds per step');
    this.chart.setAttribute('preserveAspectRatio', 'none');
    this.chartLabel = el('div', 'chart-label', 'ms per step');
    this.textBox = el('pre', 'text');
    this.root.append(head, grid, this.chart, this.chartLabel, this.textBox);
  }

  private fill(position: number, token: number, className: string): void {
    const cell = this.cells[position];
    if (!cell) return;
    const text = piece(token, position);
    cell.textContent = cellText(text);
    cell.title = `position ${position}: ${JSON.stringify(text)} (GPT-2 id ${token})`;
    cell.className = `cell ${className}`;
  }

  step(m: StepEvent): void {
    if (this.events.length === 0) {
      // Known before the first step: BOS, the prompt or the infill text.
      const revealed = new Set(m.revealed.map((r) => r.position));
      m.tokens.forEach(
        (token, position) => token >= 0 && !revealed.has(position) && this.fill(position, token, 'given'),
      );
    }
    this.events.push(m);
    for (const cell of this.fresh) cell.classList.remove('new');
    for (const t of m.revealed) this.fill(t.position, t.token, 'revealed new');
    this.fresh = m.revealed.map((t) => this.cells[t.position]).filter(Boolean);
    this.revealedCount += m.revealed.length;
    this.stepMs.push(m.ms);
    this.textBox.textContent = m.text;
    const seconds = this.stepMs.reduce((a, b) => a + b, 0) / 1000;
    this.counter.textContent = `step ${m.step + 1} / ${m.steps} · ${this.revealedCount} tokens · ${(this.revealedCount / seconds).toFixed(1)} tokens/s`;
    this.drawChart(m.steps);
  }

  done({ text, stats }: GenerationResult): void {
    for (const cell of this.fresh) cell.classList.remove('new');
    this.fresh = [];
    this.textBox.textContent = text;
    this.counter.textContent = `done: ${stats.steps} steps in ${(stats.totalMs / 1000).toFixed(2)} s · ${stats.tokensPerSecond.toFixed(1)} tokens/s · ${(stats.totalMs / stats.steps).toFixed(1)} ms/step`;
    this.root.classList.add('finished');
  }

  note(text: string): void {
    this.counter.textContent = text;
  }

  /** Back to an empty grid (for a replay). */
  clear(): void {
    for (const cell of this.cells) {
      cell.className = 'cell';
      cell.textContent = '';
    }
    this.fresh = [];
    this.revealedCount = 0;
    this.stepMs.length = 0;
    this.textBox.textContent = '';
    this.root.classList.remove('finished');
    this.drawChart(1);
  }

  /** Replay the recorded steps at their measured speed; resolves when the last one is shown. */
  async replay(signal: AbortSignal): Promise<void> {
    const events = this.events.splice(0);
    this.clear();
    for (const m of events) {
      await new Promise((resolve) => setTimeout(resolve, m.ms));
      if (signal.aborted) break;
      this.step(m);
    }
    if (!signal.aborted) {
      for (const cell of this.fresh) cell.classList.remove('new');
      const seconds = this.stepMs.reduce((a, b) => a + b, 0) / 1000;
      this.counter.textContent = `replayed: ${this.stepMs.length} steps in ${seconds.toFixed(2)} s · ${(this.revealedCount / seconds).toFixed(1)} tokens/s`;
    }
  }

  private drawChart(steps: number): void {
    const width = 300; // viewBox units, stretched to the panel's width
    const height = 48;
    const max = Math.max(1, ...this.stepMs);
    const slot = width / Math.max(steps, this.stepMs.length, 1);
    this.chart.setAttribute('viewBox', `0 0 ${width} ${height}`);
    this.chart.replaceChildren();
    this.stepMs.forEach((ms, i) => {
      const bar = document.createElementNS(SVG, 'rect');
      const h = Math.max(1, (ms / max) * height);
      bar.setAttribute('x', String(i * slot));
      bar.setAttribute('y', String(height - h));
      bar.setAttribute('width', String(Math.max(0.5, slot * 0.8)));
      bar.setAttribute('height', String(h));
      const tip = document.createElementNS(SVG, 'title');
      tip.textContent = `step ${i + 1}: ${ms.toFixed(1)} ms`;
      bar.append(tip);
      this.chart.append(bar);
    });
    const mean = this.stepMs.length ? this.stepMs.reduce((a, b) => a + b, 0) / this.stepMs.length : 0;
    this.chartLabel.textContent = this.stepMs.length
      ? `ms per step: max ${max.toFixed(0)}, mean ${mean.toFixed(0)}, last ${this.stepMs[this.stepMs.length - 1].toFixed(0)}`
      : 'ms per step';
  }
}
