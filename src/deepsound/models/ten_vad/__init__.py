"""TEN VAD, the second speech detector; its model ships compiled in the ``ten-vad`` wheel."""
