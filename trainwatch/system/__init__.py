"""The box around the run: what the logs alone cannot say.

The processes that write each log, their GPUs (NVML), the Slurm job a run
belongs to, and notifications sent out. Each piece is optional and fails
soft: no NVIDIA driver, no Slurm, no permission to see a process means
nothing is shown, never an error. Takes paths and PIDs in, gives plain data
out; imports only ``core`` besides itself.
"""
