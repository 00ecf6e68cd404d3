"""What the llama.cpp and HTTP backends share: llama-cpp-python imported on first
use, its log silenced, and a GGUF's vocabulary and chat template (read without the
weights). Private to :mod:`numbias.backends`."""

from __future__ import annotations

import ctypes
from typing import Any

from numbias.data.prompt import Prompt, drop_repeated_bos, render_chat, render_plain
from numbias.models.catalog import resolve
from numbias.util.errors import NumbiasError


class GGUFVocab:
    """A GGUF's tokenizer and chat template: what turns a prompt into token ids and
    token ids into the text pieces the score trie is built from. Loading it needs no
    weights (``load`` reads the vocabulary only), so HTTP judges use it too."""

    def __init__(self, model: Any, lib: Any) -> None:
        self._model = model
        self._lib = lib
        self.n_vocab: int = model.n_vocab()
        self.pieces = [self._piece(t) for t in range(self.n_vocab)]
        self.eog = frozenset(t for t in range(self.n_vocab) if lib.llama_vocab_is_eog(model.vocab, t))
        self.template: str | None = model.metadata().get("tokenizer.chat_template")
        self.bos_text = self._token_text(model.token_bos())
        self._eos = self._token_text(model.token_eos())
        self.adds_bos: bool = bool(model.add_bos_token())

    @classmethod
    def load(cls, model: str) -> GGUFVocab:
        """The vocabulary of an embedded judge or a local GGUF, without its weights."""
        lib, internals = import_llama()
        path = resolve(model).path
        params = lib.llama_model_default_params()
        params.vocab_only = True
        lib.llama_log_set(silent_log, ctypes.c_void_p())
        try:
            return cls(internals.LlamaModel(path_model=str(path), params=params, verbose=False), lib)
        except ValueError:
            raise NumbiasError(f"llama.cpp could not read the vocabulary of {path}") from None

    def _piece(self, token: int) -> str:
        buf = ctypes.create_string_buffer(64)
        n = self._lib.llama_token_to_piece(self._model.vocab, token, buf, len(buf), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._lib.llama_token_to_piece(self._model.vocab, token, buf, len(buf), 0, False)
        return buf.raw[:n].decode("utf-8", errors="replace")

    def _token_text(self, token: int) -> str:
        return "" if token < 0 else self._model.token_get_text(token)

    def render(self, prompt: Prompt, chat: bool) -> str:
        """The model's own chat template (``chat``) or plain completion text."""
        if chat:
            if not self.template:
                raise NumbiasError("this model has no chat template; use it as a base model (chat=False)")
            return render_chat(self.template, prompt, self.bos_text, self._eos)
        return render_plain(prompt)

    def tokenize(self, text: str) -> list[int]:
        tokens = self._model.tokenize(text.encode("utf-8"), self.adds_bos, True)
        return drop_repeated_bos(tokens, self._model.token_bos())


def import_llama() -> tuple[Any, Any]:
    try:
        import llama_cpp
        from llama_cpp import _internals
    except ImportError:
        raise NumbiasError(
            'the llama.cpp backend needs llama-cpp-python: CMAKE_ARGS="-DGGML_NATIVE=OFF" '
            "pip install 'numbias[llama]'"
        ) from None
    return llama_cpp, _internals


@ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
def silent_log(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp log sink that drops everything (errors surface as exceptions)."""
