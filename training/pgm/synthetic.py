"""Learnable random token data for smoke tests: chunks of length L from a sparse random Markov
chain (each token has a few likely successors), each chunk starting with BOS, written as the
uint16 `train.bin` / `val.bin` that train.py reads.

  /usr/bin/python3 -m pgm.synthetic --out /tmp/smoke --vocab-size 67 --length 32
"""
import argparse
from pathlib import Path

import numpy as np


def markov_chunks(n_chunks, length, vocab_size, bos_id, rng, successors=3):
  n_words = vocab_size - 2                     # ids < V-2: ordinary tokens (V-2 BOS, V-1 mask)
  table = rng.integers(0, n_words, size=(n_words, successors))
  chunks = np.empty((n_chunks, length), dtype=np.uint16)
  chunks[:, 0] = bos_id
  token = rng.integers(0, n_words, size=n_chunks)
  for i in range(1, length):
    chunks[:, i] = token
    token = table[token, rng.integers(0, successors, size=n_chunks)]
  return chunks


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', type=Path, required=True)
  parser.add_argument('--vocab-size', type=int, default=67, help='including BOS (V-2) and mask (V-1)')
  parser.add_argument('--length', type=int, default=32)
  parser.add_argument('--train-chunks', type=int, default=4096)
  parser.add_argument('--val-chunks', type=int, default=256)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  rng = np.random.default_rng(args.seed)
  args.out.mkdir(parents=True, exist_ok=True)
  bos_id = args.vocab_size - 2
  total = args.train_chunks + args.val_chunks
  chunks = markov_chunks(total, args.length, args.vocab_size, bos_id, rng)
  chunks[:args.train_chunks].tofile(args.out / 'train.bin')
  chunks[args.train_chunks:].tofile(args.out / 'val.bin')
  print(f'wrote {args.out}/train.bin, val.bin: L={args.length}, V={args.vocab_size}, BOS={bos_id}')


if __name__ == '__main__':
  main()
