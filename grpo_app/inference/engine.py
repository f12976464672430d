"""One generation path for the Compare tab, the batch comparison and the CLI.

`InferenceModels` holds the base model, separate from the model being trained, so comparing never touches a
running job (it reads the last *saved* adapter). It generates with the fast decoder (`decoder.Decoder`): a decoding copy
of the base and one merged copy (base + LoRA) per adapter in use. Where the decoder cannot serve the model or the
settings, it says why in the log and falls back to transformers' `generate`, with adapters switched on and off on
the base itself.

Training already samples with `decoder.Decoder`; here it also serves inference. Batches of prompts run as one
decoder each (prompts sorted by length, so little padding), and several models stream at once: the base and the
tuned model take turns, one token each, so both answers grow together. Every row has its own seeded random
stream: a prompt's answer does not depend on its batch, and the base answer not on the adapter beside it."""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import Config
from ..memory import trim
from ..prompts import prompt_ids, render_prompt
from ..settings import GenerationSettings
from .decoder import Decoder, generate_kwargs, generation_config, prepare, seeded, supports

log = logging.getLogger(__name__)


@dataclass
class Generation:
    text: str
    tokens: int
    seconds: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


CACHE_TOKENS = 32_768  # rows x (longest prompt + new tokens) per decoder: ~0.7 GB of KV cache for SmolLM2-135M


def batches(lengths: list[int], new_tokens: int, max_rows: int) -> list[list[int]]:
    """Prompt indices in decoders: similar lengths together (little padding), each within the KV-cache budget."""
    out: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        rows = out[-1] if out else None
        if rows and len(rows) < max_rows and (len(rows) + 1) * (lengths[i] + new_tokens) <= CACHE_TOKENS:
            rows.append(i)
        else:
            out.append([i])
    return out


def batch(
    model,
    tokenizer,
    prompts: list,
    settings: GenerationSettings,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> list[Generation]:
    """Answers in the prompts' order; prompt i draws from seed + i whatever batch it lands in."""
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    config, out, done = generation_config(settings, tokenizer), [None] * len(ids), 0
    for part in batches([len(x) for x in ids], settings.max_new_tokens, max(1, batch_size)):
        t0 = time.perf_counter()
        decoder = Decoder(
            model, [ids[i] for i in part], config, generators=[seeded(settings.seed + i, model.device) for i in part]
        )
        while decoder.step():
            if progress and decoder.t % 16 == 0:  # answers finished so far, for a progress bar that moves
                progress(done + int((decoder.length < decoder.t).sum()), len(ids))
        seconds = (time.perf_counter() - t0) / len(part)
        for i, tokens in zip(part, decoder.completions(), strict=True):
            out[i] = Generation(tokenizer.decode(tokens, skip_special_tokens=True).strip(), len(tokens), seconds)
        done += len(part)
        if progress:
            progress(done, len(ids))
    return out


def stream_together(models: list, tokenizer, prompt, settings: GenerationSettings) -> Iterator[list[Generation]]:
    """The same prompt to each model, all answers growing together; yields every answer after each token.

    Each model is prefilled in turn and shows its first token at once, then they take turns a token each. Each
    side draws from `settings.seed`, as it would alone."""
    ids, config = prompt_ids(tokenizer, prompt), generation_config(settings, tokenizer)
    t0, decoders = time.perf_counter(), []
    answers = [Generation("", 0, 0.0) for _ in models]

    def show(i: int) -> None:
        tokens = decoders[i].completions()[0]
        answers[i] = Generation(
            tokenizer.decode(tokens, skip_special_tokens=True).strip(), len(tokens), time.perf_counter() - t0
        )

    for i, model in enumerate(models):
        decoders.append(Decoder(model, [ids], config, generators=[seeded(settings.seed, model.device)]))
        decoders[i].step()
        show(i)
        yield list(answers)
    while not all(d.done for d in decoders):
        for i, decoder in enumerate(decoders):
            if not decoder.done:
                decoder.step()
                show(i)
        yield list(answers)


def _encode(texts: list[str], tokenizer, device) -> dict:
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)


def generate(
    model, tokenizer, prompts: list, settings: GenerationSettings, batch_size: int = 8, progress=None
) -> list[Generation]:
    """Completions for many prompts; each batch is seeded from `settings.seed`, so runs are repeatable."""
    out: list[Generation] = []
    for start in range(0, len(prompts), batch_size):
        batch = [render_prompt(p, tokenizer) for p in prompts[start : start + batch_size]]
        inputs = _encode(batch, tokenizer, model.device)
        torch.manual_seed(settings.seed + start)
        t0 = time.perf_counter()
        with torch.inference_mode():
            ids = model.generate(**inputs, **generate_kwargs(settings, tokenizer))
        seconds = (time.perf_counter() - t0) / len(batch)
        new = ids[:, inputs["input_ids"].shape[1] :]
        for row in new:
            n = int((row != tokenizer.pad_token_id).sum()) if tokenizer.pad_token_id is not None else len(row)
            out.append(Generation(tokenizer.decode(row, skip_special_tokens=True).strip(), n, seconds))
        if progress:
            progress(len(out), len(prompts))
    return out


def stream(model, tokenizer, prompt, settings: GenerationSettings, lock=None) -> Iterator[Generation]:
    """Yields the growing completion of one prompt, token by token; the last item is the full answer."""
    from transformers import TextIteratorStreamer

    inputs = _encode([render_prompt(prompt, tokenizer)], tokenizer, model.device)
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with lock or nullcontext(), torch.inference_mode():
                torch.manual_seed(settings.seed)
                model.generate(**inputs, streamer=streamer, **generate_kwargs(settings, tokenizer))
        except BaseException as e:  # surfaced to the caller below
            errors.append(e)
            streamer.end()

    thread = threading.Thread(target=run, daemon=True)
    t0 = time.perf_counter()
    thread.start()
    text, tokens = "", 0
    for piece in streamer:
        text += piece
        tokens += 1
        yield Generation(text.strip(), tokens, time.perf_counter() - t0)
    thread.join()
    if errors:
        raise errors[0]
    final = len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
    yield Generation(text.strip(), final, time.perf_counter() - t0)


class InferenceModels:
    """The base model, its decoding copies (the base, and merged base + adapter, at most `keep` adapters), and for
    the fallback the adapters attached to the base by name and switched on or off.

    Memory: each decoding copy holds the model's weights once more (SmolLM2-135M in bf16: about 330 MB, packed)."""

    def __init__(self, cfg: Config, keep: int = 2):
        from ..models import load_model

        self.cfg = cfg
        self.base, self.tokenizer, _ = load_model(cfg)
        self.base.eval()
        self.model = self.base
        self.loaded: OrderedDict[str, str] = OrderedDict()  # adapter path -> adapter name (fallback path)
        self.decoders: OrderedDict[str | None, torch.nn.Module] = OrderedDict()  # None = the base
        self.keep = keep
        self.lock = threading.Lock()  # one generation at a time on these weights
        self.said: set[str] = set()

    def fallback_reason(self, settings: GenerationSettings) -> str:
        """Why the fast decoder cannot serve these settings on this model ('' when it can); logged once."""
        reason = supports(self.base, generation_config(settings, self.tokenizer))
        if reason and reason not in self.said:
            self.said.add(reason)
            log.warning(
                "Generation falls back to transformers' generate (slower): the fast decoder does not handle %s.", reason
            )
        return reason

    @staticmethod
    def _key(adapter: str | None) -> str | None:
        return str(Path(adapter).resolve()) if adapter and Path(adapter).exists() else adapter

    def decoder_model(self, adapter: str | None):
        """The decoding copy for the base (None) or for base + `adapter`, merged; built on first use."""
        from peft import PeftModel

        key = self._key(adapter)
        if key in self.decoders:
            self.decoders.move_to_end(key)
            return self.decoders[key]
        # the base's own modules carry LoRA layers once the fallback attached adapters: copy without them
        model = copy.deepcopy(self.base) if self.model is self.base else copy.deepcopy(self.model).unload()
        if adapter is not None:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        model.eval()
        prepare(model)
        self.decoders[key] = model
        while sum(k is not None for k in self.decoders) > self.keep:
            self.decoders.pop(next(k for k in self.decoders if k is not None))
        return model

    def warm(self, adapter: str | None) -> None:
        """Build the decoding copies now (e.g. when an adapter is picked), so Generate starts at once."""
        with self.lock:
            self.decoder_model(None)
            if adapter:
                self.decoder_model(adapter)

    def _attach(self, adapter: str) -> str:
        from peft import PeftModel

        key = self._key(adapter)
        if key in self.loaded:
            self.loaded.move_to_end(key)
            return self.loaded[key]
        name = f"a{abs(hash((key, time.time()))) % 10**8}"
        if self.model is self.base:
            self.model = PeftModel.from_pretrained(self.base, adapter, adapter_name=name)
        else:
            self.model.load_adapter(adapter, adapter_name=name)
        self.loaded[key] = name
        while len(self.loaded) > self.keep:
            _, old = self.loaded.popitem(last=False)
            self.model.delete_adapter(old)
        self.model.eval()
        return name

    def select(self, adapter: str | None):
        """The model to call: with `adapter` active, or the plain base (adapters disabled) for None."""
        if adapter is None:
            return _BaseView(self.model) if self.model is not self.base else self.base
        name = self._attach(adapter)
        self.model.set_adapter(name)
        return self.model

    def generate(
        self,
        prompts: list,
        settings: GenerationSettings,
        adapter: str | None = None,
        batch_size: int = 64,
        progress=None,
    ) -> list[Generation]:
        with self.lock:
            try:
                if not self.fallback_reason(settings):
                    return batch(self.decoder_model(adapter), self.tokenizer, prompts, settings, batch_size, progress)
                model = self.select(adapter)
                with _adapters_off(model):
                    return generate(model, self.tokenizer, prompts, settings, batch_size, progress)
            finally:
                trim()  # the KV caches and logits go back to the system, not to the app's heap

    def stream(self, prompt, settings: GenerationSettings, adapter: str | None = None) -> Iterator[Generation]:
        """One side's answer, growing."""
        for base, tuned in self.stream_pair(prompt, settings, adapter, base=adapter is None):
            yield base if adapter is None else tuned

    def stream_pair(
        self, prompt, settings: GenerationSettings, adapter: str | None, base: bool = True
    ) -> Iterator[tuple[Generation | None, Generation | None]]:
        """(base answer, tuned answer) growing together, token by token (`adapter` None: the base alone)."""
        empty = Generation("", 0, 0.0)
        with self.lock:
            try:
                yield from self._stream_pair(prompt, settings, adapter, base, empty)
            finally:
                trim()

    def _stream_pair(self, prompt, settings, adapter, base, empty):
        if not self.fallback_reason(settings):
            models = ([self.decoder_model(None)] if base else []) + ([self.decoder_model(adapter)] if adapter else [])
            for answers in stream_together(models, self.tokenizer, prompt, settings):
                if base and adapter:
                    yield answers[0], answers[1]
                else:
                    yield (answers[0], None) if base else (None, answers[0])
            return
        last = empty
        if base:
            model = self.select(None)
            with _adapters_off(model):
                for last in stream(model, self.tokenizer, prompt, settings):
                    yield last, (empty if adapter else None)
        if adapter:
            model = self.select(adapter)
            for g in stream(model, self.tokenizer, prompt, settings):
                yield (last if base else None), g


class _BaseView:
    """Marks 'the base model' when adapters are attached: generation runs with them disabled."""

    def __init__(self, peft_model):
        self.peft_model = peft_model

    def __getattr__(self, name):
        return getattr(self.peft_model, name)


def _adapters_off(model):
    return model.peft_model.disable_adapter() if isinstance(model, _BaseView) else nullcontext()
