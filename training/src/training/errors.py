class PipelineError(Exception):
    """A pipeline step cannot go on: bad input, bad config, failed check.

    The CLI prints the message and exits non-zero; the message names the file, column or key.
    """
