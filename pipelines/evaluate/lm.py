"""Small GPT-style language models for `curate evaluate`: a BPE tokenizer, packed training streams with loss masks,
training with a fixed seed, sampling, and held-out likelihood.

No Spark here: `pipelines/evaluate/models.py` builds the documents from the lake and hands them over as `TrainDoc`s.

- **Tokenizer**: byte-level BPE (`tokenizers`), trained once on the union of both models' training text, with
  `<|endoftext|>` and the constitution's tag tokens as special tokens (a tag token is one token, never split).
- **Packing**: documents are tokenized, each followed by `<|endoftext|>`, and concatenated until the token budget
  is filled (cycling over the documents when they hold fewer tokens than the budget: `epochs` says how often).
  The stream is cut into blocks of `ctx` tokens. A token whose characters overlap a loss-masking span, and every
  tag token, carries no loss (label -100): the model reads them but is never trained to produce them, which is
  the data-side form of token-level masking (the tag tokens condition what follows; a model should not learn to
  emit control tokens on its own).
- **Training**: AdamW, linear warm-up then cosine decay, gradient clipping; the seed fixes the initial weights and
  the block order, so two models trained with the same seed on streams of the same length see their blocks in
  the same positions. On CPU the same seed and inputs give bit-identical weights on the same machine; on CUDA
  deterministic algorithms are requested (`CUBLAS_WORKSPACE_CONFIG` set before CUDA starts).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

EOS = "<|endoftext|>"
IGNORE = -100


@dataclass(frozen=True)
class Preset:
    """A model size and the budget it is meant for (`evaluate.size`)."""

    vocab: int
    ctx: int
    d_model: int
    layers: int
    heads: int
    batch: int  # blocks per optimizer step
    lr: float
    budget_tokens: int  # default training tokens per model
    note: str = ""


PRESETS: dict[str, Preset] = {
    # for tests and smoke checks: seconds on one core, learns little
    "micro": Preset(512, 64, 32, 2, 2, 8, 3e-3, 40_000, "tests only"),
    # about 1.3M parameters: a minute per model on 2 CPU cores at the default budget (the demo)
    "tiny": Preset(4096, 128, 128, 4, 4, 16, 2e-3, 400_000, "2 CPU cores, minutes"),
    # about 7M parameters: a GPU, or an hour of CPU
    "small": Preset(8192, 256, 256, 6, 8, 32, 1e-3, 20_000_000, "GPU, minutes"),
    # about 34M parameters (d 512, 8 layers, context 512): a GPU
    "base": Preset(16384, 512, 512, 8, 8, 64, 6e-4, 300_000_000, "GPU, an hour"),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model size {name!r}: use one of {sorted(PRESETS)}") from None


@dataclass(frozen=True)
class TrainDoc:
    """One training document: its text and the character spans that carry no loss."""

    text: str
    spans: tuple[tuple[int, int], ...] = ()


@dataclass
class Packed:
    """A training stream of exactly `blocks * ctx` tokens; `labels` is `ids` with -100 where no loss is taken."""

    ids: np.ndarray  # (blocks, ctx) int64
    labels: np.ndarray  # (blocks, ctx) int64
    documents: int  # distinct documents read
    epochs: float  # passes over the documents (>1: the documents held fewer tokens than the budget)
    masked_span_tokens: int
    tag_tokens: int

    @property
    def tokens(self) -> int:
        return int(self.ids.size)

    @property
    def loss_tokens(self) -> int:
        return int((self.labels != IGNORE).sum())


def train_tokenizer(texts: Iterable[str], vocab: int, special: Sequence[str] = ()) -> Tokenizer:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [EOS, *[s for s in special if s and s != EOS]]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def _masked(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """True for every token whose character range overlaps a span."""
    out = np.zeros(len(offsets), dtype=bool)
    if not spans:
        return out
    starts = np.array([o[0] for o in offsets])
    ends = np.array([o[1] for o in offsets])
    for s, e in spans:
        out |= (starts < e) & (ends > s)
    return out


def pack(
    docs: Sequence[TrainDoc],
    tok: Tokenizer,
    budget_tokens: int,
    ctx: int,
    *,
    no_loss_ids: Sequence[int] = (),
    batch_docs: int = 512,
) -> Packed:
    """Fill a stream of `budget_tokens // ctx` blocks from `docs` in order (cycling when they run out)."""
    if not docs:
        raise ValueError("no training documents")
    blocks = budget_tokens // ctx
    if blocks < 1:
        raise ValueError(f"a budget of {budget_tokens} tokens is smaller than one block of {ctx}")
    need = blocks * ctx
    eos = tok.token_to_id(EOS)
    no_loss = np.array(sorted(set(no_loss_ids)), dtype=np.int64)
    ids_parts: list[np.ndarray] = []
    lab_parts: list[np.ndarray] = []
    have = 0
    read = 0
    masked = tags = 0
    i = 0
    while have < need:
        chunk = [docs[(i + j) % len(docs)] for j in range(batch_docs)]
        for doc, enc in zip(chunk, tok.encode_batch([d.text for d in chunk]), strict=True):
            ids = np.array([*enc.ids, eos], dtype=np.int64)
            span_mask = np.append(_masked(enc.offsets, doc.spans), False)
            tag_mask = np.isin(ids, no_loss)
            labels = np.where(span_mask | tag_mask, IGNORE, ids)
            take = min(len(ids), need - have)
            ids_parts.append(ids[:take])
            lab_parts.append(labels[:take])
            masked += int((span_mask & ~tag_mask)[:take].sum())
            tags += int(tag_mask[:take].sum())
            have += take
            read += 1
            if have >= need:
                break
        i += batch_docs
    stream = np.concatenate(ids_parts).reshape(blocks, ctx)
    labels = np.concatenate(lab_parts).reshape(blocks, ctx)
    return Packed(stream, labels, min(read, len(docs)), read / len(docs), masked, tags)


def new_model(p: Preset, vocab_size: int, seed: int) -> Any:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # save_pretrained's shard bar would interleave with ours
    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=vocab_size,
        n_positions=p.ctx,
        n_embd=p.d_model,
        n_layer=p.layers,
        n_head=p.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        tie_word_embeddings=True,
    )
    return GPT2LMHeadModel(cfg)


def n_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@dataclass
class TrainResult:
    model: Any
    steps: int
    tokens: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # mean training loss per step

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def final_loss(self) -> float:
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return float(sum(tail) / len(tail)) if tail else float("nan")


def _deterministic(device: str) -> None:
    import torch

    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)


def train(
    packed: Packed,
    p: Preset,
    vocab_size: int,
    *,
    seed: int,
    device: str = "cpu",
    on_step: Callable[[int, int, float], None] | None = None,
) -> TrainResult:
    """Train a new model for one pass over `packed` (blocks in a seeded order)."""
    import torch

    _deterministic(device)
    model = new_model(p, vocab_size, seed).to(device)
    model.train()
    steps = packed.ids.shape[0] // p.batch
    if steps < 1:
        raise ValueError(f"{packed.ids.shape[0]} blocks are fewer than one batch of {p.batch}: raise the budget")
    order = np.random.default_rng(seed).permutation(packed.ids.shape[0])[: steps * p.batch]
    ids = torch.from_numpy(packed.ids)
    labels = torch.from_numpy(packed.labels)
    decay = [q for n, q in model.named_parameters() if q.ndim >= 2]
    other = [q for n, q in model.named_parameters() if q.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}], lr=p.lr, betas=(0.9, 0.95)
    )
    warm = max(1, steps // 20)

    def lr_at(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, steps - warm)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(steps):
        idx = torch.from_numpy(order[step * p.batch : (step + 1) * p.batch])
        x = ids[idx].to(device)
        y = labels[idx].to(device)
        loss = model(input_ids=x, labels=y).loss
        if torch.isnan(loss):  # a batch of masked tokens only: nothing to learn from it
            opt.zero_grad(set_to_none=True)
            sched.step()
            continue
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, steps, losses[-1])
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    model.eval()
    return TrainResult(model, steps, steps * p.batch * p.ctx, seconds, losses)


def sample(
    model: Any,
    tok: Tokenizer,
    prompts: Sequence[str],
    *,
    k: int,
    max_new_tokens: int,
    top_p: float,
    seed: int,
    banned_ids: Sequence[int] = (),
    batch: int = 32,
) -> list[list[str]]:
    """k continuations per prompt (nucleus sampling, as RealToxicityPrompts), the prompt itself not included.

    Prompts are left-padded into batches; the seed is set per batch, so a prompt's continuations do not depend
    on which other prompts were asked for, only on its batch position.
    """
    import torch

    device = next(model.parameters()).device
    eos = tok.token_to_id(EOS)
    ctx = model.config.n_positions
    keep = max(1, ctx - max_new_tokens)
    out: list[list[str]] = []
    for b in range(0, len(prompts), batch):
        group = prompts[b : b + batch]
        encoded = [[eos, *tok.encode(p).ids][-keep:] for p in group]
        width = max(len(e) for e in encoded)
        ids = torch.full((len(encoded), width), eos, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, width - len(e) :] = torch.tensor(e)
            mask[i, width - len(e) :] = 1
        torch.manual_seed(seed + b)
        with torch.no_grad():
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                do_sample=True,
                top_p=top_p,
                top_k=0,
                temperature=1.0,
                max_new_tokens=max_new_tokens,
                num_return_sequences=k,
                pad_token_id=eos,
                eos_token_id=eos,
                bad_words_ids=[[t] for t in banned_ids] or None,
            )
        new = gen[:, width:].tolist()
        for i in range(len(group)):
            conts = []
            for seq in new[i * k : (i + 1) * k]:
                if eos in seq:
                    seq = seq[: seq.index(eos)]
                conts.append(tok.decode(seq))
            out.append(conts)
    return out


@dataclass(frozen=True)
class DocLikelihood:
    nll: float  # summed negative log-likelihood (nats) of the scored tokens
    tokens: int
    correct: int  # tokens the model ranked first (next-token accuracy)


def _windows(ids: Sequence[int], ctx: int, head: int) -> list[tuple[list[int], int]]:
    """A document's windows of at most `ctx` tokens (one token of overlap: every target scored once), each with
    how many of its leading targets belong to the `head` tokens (read, not scored)."""
    out = []
    for s in range(0, len(ids) - 1, ctx - 1):
        w = list(ids[s : s + ctx])
        if len(w) < 2:
            break
        out.append((w, max(0, head - s)))  # target j sits at position s + 1 + j: scored when past the head
    return out


def _padded(group: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[Any, Any]:
    """Right-padded ids and attention mask: causal attention never lets a real token see the padding after it."""
    import torch

    width = max(len(w) for w in group)
    ids = torch.full((len(group), width), pad, dtype=torch.long)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    for i, w in enumerate(group):
        ids[i, : len(w)] = torch.tensor(w)
        mask[i, : len(w)] = 1
    return ids.to(device), mask.to(device)


def likelihood(
    model: Any, tok: Tokenizer, texts: Sequence[str], *, max_tokens: int, prefix: str = "", batch: int = 32
) -> list[DocLikelihood]:
    """Per document: NLL and top-1 hits of its first `max_tokens` tokens, in windows of the model's context.

    Each document starts after `<|endoftext|>` (as in training), so its first token is scored too. With `prefix`
    (a tag token and its separator, as export writes them) the prefix is read as context but not scored, so the
    same tokens are scored with and without it. Windows of similar length go through the model together.
    """
    import torch

    device = next(model.parameters()).device
    eos = tok.token_to_id(EOS)
    ctx = model.config.n_positions
    head = tok.encode(prefix).ids if prefix else []
    windows = []
    for d, text in enumerate(texts):
        ids = [eos, *head, *tok.encode(text).ids[:max_tokens]]
        windows.extend((d, w, skip) for w, skip in _windows(ids, ctx, len(head)))
    windows.sort(key=lambda x: len(x[1]))
    nll = [0.0] * len(texts)
    tokens = [0] * len(texts)
    correct = [0] * len(texts)
    for b in range(0, len(windows), batch):
        group = windows[b : b + batch]
        ids, mask = _padded([w for _, w, _ in group], eos, device)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        target = ids[:, 1:]
        logp = torch.log_softmax(logits, dim=-1).gather(2, target[:, :, None])[:, :, 0]
        hits = logits.argmax(-1) == target
        for i, (d, w, skip) in enumerate(group):
            end = len(w) - 1
            nll[d] -= float(logp[i, skip:end].sum())
            correct[d] += int(hits[i, skip:end].sum())
            tokens[d] += end - skip
    return [DocLikelihood(nll[d], tokens[d], correct[d]) for d in range(len(texts))]


def hidden_means(model: Any, tok: Tokenizer, texts: Sequence[str], *, max_tokens: int, batch: int = 32) -> np.ndarray:
    """(texts, layers + 1, d_model): each layer's hidden state averaged over a text's tokens (the embedding output
    first, the last block's after the final layer norm last) - what a linear probe reads."""
    import torch

    device = next(model.parameters()).device
    eos = tok.token_to_id(EOS)
    keep = min(max_tokens, model.config.n_positions - 1)
    encoded = [[eos, *tok.encode(t).ids[:keep]] for t in texts]
    out: list[Any] = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    for b in range(0, len(order), batch):
        idx = order[b : b + batch]
        ids, mask = _padded([encoded[i] for i in idx], eos, device)
        with torch.no_grad():
            hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        # position 0 is <|endoftext|>, the same for every text: the mean is over the text's own tokens
        own = mask.clone()
        own[:, 0] = 0
        own[own.sum(1) == 0, 0] = 1  # an empty text: its one position
        weights = (own / own.sum(1, keepdim=True)).float()[:, :, None]
        stacked = torch.stack([(h.float() * weights).sum(1) for h in hs], dim=1)  # (batch, layers + 1, d)
        for j, i in enumerate(idx):
            out[i] = stacked[j]
    return torch.stack(out).cpu().numpy() if out else np.zeros((0, 0, 0))


def cloze(model: Any, tok: Tokenizer, items: Sequence[tuple[str, str]]) -> list[bool]:
    """Per (context, word): does greedy decoding after `context` produce exactly the tokens of `word`?

    `word` carries its leading space (" Paris"), so its tokens are those it gets inside running text.
    """
    import torch

    device = next(model.parameters()).device
    eos = tok.token_to_id(EOS)
    ctx = model.config.n_positions
    out = []
    for context, word in items:
        c = tok.encode(context).ids
        w = tok.encode(word).ids
        if not w:
            out.append(False)
            continue
        ids = [eos, *c, *w][-ctx:]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0]
        start = len(ids) - len(w) - 1  # the position whose logits predict the word's first token
        pred = logits[start : start + len(w)].argmax(-1).tolist()
        out.append(pred == w)
    return out
