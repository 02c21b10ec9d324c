"""Golden-making scripts: each module regenerates one family's reference files from the official code.

The goldens under ``tests/data/`` are the outputs of the *official* implementations, run locally on
small inputs with seeded weights (``deepsound.testing.equivalence.fill_seeded``), so that our
implementations can be compared with them without the official code or the published weights. The
official code is never part of the project: each module here takes the path of a local checkout of
the official repository, imports it from there, and pins the commit the committed goldens came from.

Convention (``tools/make_goldens.py`` discovers the families by it):

* one module per family, ``tools/goldens/<family>.py``; modules whose name starts with ``_`` are
  helpers, not families;
* a family module defines

  - ``DESCRIPTION: str`` -- one line for ``--help``;
  - ``add_arguments(parser: argparse.ArgumentParser) -> None`` -- its own options (checkout paths,
    ``--full`` for the slow full-size goldens, ...), with defaults wherever one makes sense;
  - ``main(args: argparse.Namespace) -> list[pathlib.Path]`` -- writes its files under ``args.out``
    (a folder laid out like ``tests/data``) and returns the paths it wrote, relative to ``args.out``;

* the dispatcher adds ``--out`` and ``--compare`` itself: with ``--compare`` the files are written to
  a temporary folder and compared, tensor by tensor, with the committed ones;
* nothing in ``src/`` imports this package; modules here may import ``deepsound.testing`` (seeded
  weights, manifests) but never our model code's outputs -- a golden must come from the official code.
"""
