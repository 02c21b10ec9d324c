"""RNNoise, the staged speech gate's second opinion; its network ships compiled in the ``pyrnnoise`` wheel."""
