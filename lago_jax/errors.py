"""The errors a run raises for a user to act on, importable without orbax or the LLM stack."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupt or does not match the run."""


class NonFiniteLossError(FloatingPointError):
    """Training (PPO or prior distillation) produced a non-finite loss, parameter or statistic;
    the message names the update or step, and the last good state stays checkpointed."""
