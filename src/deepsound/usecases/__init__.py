"""What the command line, the web page and Ray workers all call, beside the pipeline itself.

One module per use case: :mod:`.separate` (step 3 on a file the user has), :mod:`.judge`
(step 2 on a video's own soundtrack), :mod:`.ask` (one question to an MLLM). The CLI
commands and the page's tabs are thin layers over these; neither holds the logic.
"""
