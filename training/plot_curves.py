"""Training curves of runs as a self-contained SVG, written by hand (no matplotlib).

  /usr/bin/python3 training/plot_curves.py pgm-small=training/runs/pgm-small \
      mdlm-small=training/runs/mdlm-small --out docs/training-curves.svg [--final docs/final-eval.json]

Left: the training objective (log.jsonl `loss`, mean of the last --log-every steps), faint, and
its exponential moving average (--smooth, over log records). Right: the validation bound
(`val_bound`, EMA weights, solid; `val_bound_raw`, dashed) on the run's 3 fixed val batches;
with --final, the full held-out bound of the shipped checkpoint as a diamond at its step.
All values in nats per token.
"""
import argparse
import json
import math
from html import escape
from pathlib import Path

COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd']
W = 920
PANEL_W, PANEL_H = 360, 270
LEFT, TOP = 70, 50
GAP = 110


def read_log(path):
  return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def ema_smooth(values, weight):
  """Exponential moving average, bias-corrected (starts from 0, divided by 1 - weight^n)."""
  out, acc = [], 0.0
  for n, v in enumerate(values, 1):
    acc = weight * acc + (1 - weight) * v
    out.append(acc / (1 - weight ** n))
  return out


def nice_ticks(lo, hi, n=5):
  span = hi - lo or 1.0
  step = 10 ** math.floor(math.log10(span / n))
  for m in (1, 2, 2.5, 5, 10):
    if span / (m * step) <= n:
      step *= m
      break
  start = math.ceil(lo / step) * step
  ticks = []
  t = start
  while t <= hi + 1e-9:
    ticks.append(round(t, 10))
    t += step
  return ticks


class Panel:
  def __init__(self, x0, title, xmax, ylo, yhi, cid):
    self.x0, self.title, self.cid = x0, title, cid
    self.xmax = max(xmax, 1)
    pad = (yhi - ylo) * 0.05 or 0.1
    self.ylo, self.yhi = ylo - pad, yhi + pad
    self.parts = []

  def sx(self, x):
    return self.x0 + PANEL_W * x / self.xmax

  def sy(self, y):
    return TOP + PANEL_H * (1 - (y - self.ylo) / (self.yhi - self.ylo))

  def axes(self):
    p = self.parts
    p.append(f'<rect x="{self.x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#444"/>')
    p.append(f'<text x="{self.x0 + PANEL_W / 2}" y="{TOP - 14}" text-anchor="middle" font-size="14" font-weight="bold">{escape(self.title)}</text>')
    for t in nice_ticks(0, self.xmax):
      x = self.sx(t)
      p.append(f'<line x1="{x:.1f}" y1="{TOP + PANEL_H}" x2="{x:.1f}" y2="{TOP + PANEL_H + 4}" stroke="#444"/>')
      p.append(f'<text x="{x:.1f}" y="{TOP + PANEL_H + 17}" text-anchor="middle" font-size="11">{t:g}</text>')
    for t in nice_ticks(self.ylo, self.yhi):
      y = self.sy(t)
      p.append(f'<line x1="{self.x0}" y1="{y:.1f}" x2="{self.x0 + PANEL_W}" y2="{y:.1f}" stroke="#ddd"/>')
      p.append(f'<text x="{self.x0 - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{t:g}</text>')
    p.append(f'<text x="{self.x0 + PANEL_W / 2}" y="{TOP + PANEL_H + 34}" text-anchor="middle" font-size="12">optimizer step (x 4,096 tokens)</text>')
    p.append(f'<text transform="translate({self.x0 - 48},{TOP + PANEL_H / 2}) rotate(-90)" text-anchor="middle" font-size="12">nats per token</text>')

  def line(self, xs, ys, color, width=1.8, opacity=1.0, dash=None):
    if not xs:
      return
    pts = ' '.join(f'{self.sx(x):.1f},{self.sy(y):.1f}' for x, y in zip(xs, ys))
    d = f' stroke-dasharray="{dash}"' if dash else ''
    self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="{width}" '
                      f'stroke-opacity="{opacity}"{d} clip-path="url(#{self.cid})"/>')

  def dots(self, xs, ys, color, r=2.5):
    for x, y in zip(xs, ys):
      self.parts.append(f'<circle cx="{self.sx(x):.1f}" cy="{self.sy(y):.1f}" r="{r}" fill="{color}" clip-path="url(#{self.cid})"/>')

  def diamond(self, x, y, color, label):
    cx, cy = self.sx(x), self.sy(y)
    self.parts.append(f'<path d="M{cx:.1f},{cy - 6:.1f} L{cx + 6:.1f},{cy:.1f} L{cx:.1f},{cy + 6:.1f} '
                      f'L{cx - 6:.1f},{cy:.1f} Z" fill="white" stroke="{color}" stroke-width="2">'
                      f'<title>{escape(label)}</title></path>')


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument('runs', nargs='+', help='NAME=RUN_DIR (with log.jsonl)')
  p.add_argument('--out', type=Path, required=True)
  p.add_argument('--smooth', type=float, default=0.8, help='EMA weight over log records (0: none)')
  p.add_argument('--final', type=Path, help='JSON {id: final_eval output} to mark the held-out bound')
  args = p.parse_args(argv)

  runs = []
  for spec in args.runs:
    name, _, path = spec.partition('=')
    recs = read_log(Path(path) / 'log.jsonl')
    train = [(r['step'], r['loss']) for r in recs if 'loss' in r]
    val = [(r['step'], r['val_bound'], r.get('val_bound_raw')) for r in recs if 'val_bound' in r]
    runs.append((name, train, val))
  final = json.loads(args.final.read_text()) if args.final and args.final.exists() else {}

  xmax = max([s for _, t, v in runs for s, *_ in t + v] or [1]) * 1.03
  tr_all = [l for _, t, _ in runs for _, l in t]
  # Ignore the first records (loss ~ log V) when scaling, so the interesting part is visible.
  tr_scale = [l for _, t, _ in runs for s, l in t if s > 20] or tr_all or [0, 1]
  val_all = [y for _, _, v in runs for _, a, b in v for y in (a, b) if y is not None]
  val_all += [f['val'][k] for f in final.values() for k in ('pgmBound', 'mdlmBound') if k in f['val']]
  val_all = val_all or [0, 1]
  left = Panel(LEFT, 'training objective', xmax, min(tr_scale), max(tr_scale), 'c0')
  right = Panel(LEFT + PANEL_W + GAP, 'validation bound (first 3 val batches)', xmax, min(val_all), max(val_all), 'c1')
  left.axes()
  right.axes()
  clip = [f'<clipPath id="c{i}"><rect x="{pn.x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}"/></clipPath>'
          for i, pn in enumerate((left, right))]
  legend = []
  for i, (name, train, val) in enumerate(runs):
    color = COLORS[i % len(COLORS)]
    xs, ys = [s for s, _ in train], [l for _, l in train]
    left.line(xs, ys, color, width=1, opacity=0.3)
    left.line(xs, ema_smooth(ys, args.smooth), color, width=2)
    vx = [s for s, *_ in val]
    right.line(vx, [a for _, a, _ in val], color, width=2)
    right.dots(vx, [a for _, a, _ in val], color)
    raw = [(s, b) for s, _, b in val if b is not None]
    right.line([s for s, _ in raw], [b for _, b in raw], color, width=1.2, dash='4 3')
    f = final.get(name)
    label = f'{name}'
    if f:
      key = 'pgmBound' if 'pgmBound' in f['val'] else 'mdlmBound'
      right.diamond(f['globalStep'], f['val'][key], color,
                    f"{name}: {f['val'][key]:.3f} nats/token on {f['val']['chunks']} val chunks, step {f['globalStep']}")
      label += f" (held-out bound {f['val'][key]:.3f} at step {f['globalStep']})"
    elif val:
      label += f' (last val bound {val[-1][1]:.3f} at step {val[-1][0]})'
    legend.append((color, label))

  height = TOP + PANEL_H + 58 + 18 * len(legend) + 10
  parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" '
           f'viewBox="0 0 {W} {height}" font-family="Helvetica, Arial, sans-serif">',
           '<rect width="100%" height="100%" fill="white"/>', '<defs>' + ''.join(clip) + '</defs>']
  parts += left.parts[:]
  parts += right.parts[:]
  for i, (color, label) in enumerate(legend):
    y = TOP + PANEL_H + 58 + 18 * i
    parts.append(f'<line x1="{LEFT}" y1="{y - 4}" x2="{LEFT + 24}" y2="{y - 4}" stroke="{color}" stroke-width="2.5"/>')
    parts.append(f'<text x="{LEFT + 30}" y="{y}" font-size="12">{escape(label)}</text>')
  note = ('left: faint = mean of 10 steps, bold = EMA; right: solid = EMA weights, dashed = raw weights'
          + (', diamond = shipped checkpoint on {} val chunks'.format(
            '/'.join(sorted({str(f['val']['chunks']) for f in final.values()}))) if final else ''))
  parts.append(f'<text x="{LEFT}" y="{TOP + PANEL_H + 58 + 18 * len(legend)}" font-size="11" fill="#555">{escape(note)}</text>')
  parts.append('</svg>')
  args.out.parent.mkdir(parents=True, exist_ok=True)
  args.out.write_text('\n'.join(parts) + '\n')
  print(f'{args.out}: {len(runs)} runs, {sum(len(t) for _, t, _ in runs)} train points, '
        f'{sum(len(v) for _, _, v in runs)} val points')


if __name__ == '__main__':
  main()
