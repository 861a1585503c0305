"""Sample W&B run files for ``test_wandb_files``, as each writer lays them out.

The Python client's ``yaml.dump`` (``wandb_version: 1``, two-space indents,
``desc: null`` in older clients), wandb-core's Go writer (four-space indents,
sorted keys, the metadata again under ``_wandb.value.e``), what HF, Megatron,
nanoGPT, nanochat and torchtitan put in a run config, and summaries whose
``_step`` (W&B's row counter) is not the trainer's step.
"""

from __future__ import annotations

NANOGPT_CONSOLE = "".join(f"iter {i}: loss {4 - i / 1000:.4f}, time 250.00ms, mfu 30.00%\n" for i in range(0, 101, 10))


#: The Python client before wandb-core (0.15): ``desc: null`` beside each value, keys in insertion order.
CONFIG_PY_015 = """wandb_version: 1

_wandb:
  desc: null
  value:
    python_version: 3.10.12
    cli_version: 0.15.12
    framework: torch
    is_jupyter_run: false
    is_kaggle_kernel: false
    start_time: 1697394755.0
    t:
      1:
      - 1
      - 55
      3:
      - 13
      - 16
      4: 3.10.12
      5: 0.15.12
      13: linux-x86_64
out_dir:
  desc: null
  value: out
eval_interval:
  desc: null
  value: 1000
log_interval:
  desc: null
  value: 10
eval_iters:
  desc: null
  value: 200
wandb_run_name:
  desc: null
  value: gpt2-124M
gradient_accumulation_steps:
  desc: null
  value: 40
batch_size:
  desc: null
  value: 12
block_size:
  desc: null
  value: 1024
n_layer:
  desc: null
  value: 12
n_head:
  desc: null
  value: 12
n_embd:
  desc: null
  value: 768
max_iters:
  desc: null
  value: 600000
dtype:
  desc: null
  value: bfloat16
"""


#: The Python client's metadata: naive UTC ``startedAt``, ``gpu_devices``.
METADATA_PY = {
    "os": "Linux-5.15.0-88-generic-x86_64-with-glibc2.35",
    "python": "3.10.12",
    "heartbeatAt": "2023-10-15T18:32:36.200000",
    "startedAt": "2023-10-15T18:32:35.000000",
    "docker": None,
    "args": [],
    "state": "running",
    "program": "/home/u/nanoGPT/train.py",
    "host": "node7",
    "cpu_count": 32,
    "gpu": "NVIDIA A100-SXM4-80GB",
    "gpu_count": 4,
    "gpu_devices": [{"name": "NVIDIA A100-SXM4-80GB", "memory_total": 85899345920}] * 4,
    "memory": {"total": 1007.7},
}


#: nanoGPT logs ``iter`` and an eval's ``train/loss``; ``_step`` counts W&B rows.
SUMMARY_NANOGPT = {
    "iter": 100,
    "train/loss": 3.95,
    "val/loss": 3.99,
    "lr": 0.0006,
    "mfu": 30.1,
    "_timestamp": 1697395000.5,
    "_runtime": 245.2,
    "_step": 10,
    "_wandb": {"runtime": 245},
}


#: wandb-core (Go, 0.21): four-space indents, sorted keys, the metadata under ``e``.
CONFIG_CORE_021 = """_wandb:
    value:
        cli_version: 0.21.3
        e:
            k3j2h1g0f9e8d7c6:
                args:
                    - --depth=20
                cpu_count: 104
                gpu: NVIDIA H100 80GB HBM3
                gpu_count: 8
                gpu_nvidia:
                    - architecture: Hopper
                      cudaCores: 16896
                      memoryTotal: "85520809984"
                      name: NVIDIA H100 80GB HBM3
                      uuid: GPU-a5c2e793
                host: node1
                program: -m scripts.base_train
                startedAt: "2025-10-15T02:40:18.123456Z"
                writerId: k3j2h1g0f9e8d7c6
        m: []
        python_version: 3.10.12
        t:
            "1":
                - 1
                - 49
            "4": 3.10.12
            "5": 0.21.3
depth:
    value: 20
device_batch_size:
    value: 16
dtype:
    value: bfloat16
eval_every:
    value: 250
max_seq_len:
    value: 1024
num_iterations:
    value: 21400
run:
    value: d20-speedrun
total_batch_size:
    value: 524288
"""


NANOCHAT_CONSOLE = (
    "Tokens / micro-batch / rank: 32 x 2048 = 65,536\n"
    "Tokens / micro-batch: 524,288\n"
    "Total batch size 524,288 => gradient accumulation steps: 1\n"
    "step 00000/21400 (0.00%) | loss: 11.090355 | lrm: 1.00 | dt: 30000.00ms | tok/sec: 17,476 | mfu: 0.77 "
    "| total time: 0.00m\n"
    "step 00001/21400 (0.00%) | loss: 10.123456 | lrm: 1.00 | dt: 500.00ms | tok/sec: 1,048,576 | mfu: 46.30 "
    "| total time: 0.01m\n"
)


#: HF's WandbCallback: the model config overlaid with TrainingArguments.to_dict(); no ``desc`` (0.17).
CONFIG_HF_017 = """wandb_version: 1

_wandb:
  value:
    cli_version: 0.17.0
    framework: huggingface
    huggingface_version: 4.41.2
    is_jupyter_run: false
    is_kaggle_kernel: false
    m:
    - 1: train/global_step
      6:
      - 3
    python_version: 3.10.14
    start_time: 1717000000
vocab_size:
  value: 32000
max_position_embeddings:
  value: 2048
hidden_size:
  value: 2048
num_hidden_layers:
  value: 22
num_attention_heads:
  value: 32
max_length:
  value: 20
torch_dtype:
  value: float32
architectures:
  value:
  - LlamaForCausalLM
output_dir:
  value: out/tinyllama-sft
per_device_train_batch_size:
  value: 4
gradient_accumulation_steps:
  value: 8
max_steps:
  value: -1
num_train_epochs:
  value: 3
logging_strategy:
  value: steps
logging_steps:
  value: 10
eval_strategy:
  value: steps
eval_steps:
  value: 200
bf16:
  value: true
run_name:
  value: out/tinyllama-sft
model/num_parameters:
  value: 1100048384
"""


#: What HF logs through W&B at the end of train(): train/train_runtime, and its own step.
SUMMARY_HF = {
    "train/loss": 1.2034,
    "train/grad_norm": 0.5,
    "train/learning_rate": 0.0,
    "train/epoch": 3.0,
    "train/global_step": 1200,
    "train/train_runtime": 3600.5,
    "train/train_loss": 1.4,
    "train/train_samples_per_second": 10.6,
    "_step": 121,
    "_runtime": 3700,
    "_timestamp": 1717003700.0,
    "_wandb": {"runtime": 3700},
}


def bars(last: int, total: int = 1200) -> str:
    """A tqdm bar written with ``\\r`` (no dicts: only W&B got the losses)."""
    frames = (
        f"\r{100 * s // total:3d}%|{'#' * (10 * s // total):<10}| {s}/{total} [00:10<00:10,  2.00it/s]"
        for s in range(0, last + 1, 10)
    )
    return "".join(frames) + "\n"


MEGATRON_CONFIG = """wandb_version: 1

_wandb:
  desc: null
  value:
    cli_version: 0.16.6
num_layers:
  desc: null
  value: 28
hidden_size:
  desc: null
  value: 3584
num_attention_heads:
  desc: null
  value: 28
seq_length:
  desc: null
  value: 4096
micro_batch_size:
  desc: null
  value: 1
global_batch_size:
  desc: null
  value: 256
train_iters:
  desc: null
  value: 500
eval_interval:
  desc: null
  value: 100
eval_iters:
  desc: null
  value: 0
log_interval:
  desc: null
  value: 1
world_size:
  desc: null
  value: 16
params_dtype:
  desc: null
  value: torch.bfloat16
wandb_exp_name:
  desc: null
  value: qwen7b-baseline
"""


TORCHTITAN_CONFIG = """_wandb:
    value:
        cli_version: 0.19.8
job:
    value:
        config_file: ./torchtitan/models/llama3/train_configs/llama3_8b.toml
        description: Llama 3 8B training
metrics:
    value:
        enable_wandb: true
        log_freq: 10
model:
    value:
        flavor: 8B
        name: llama3
training:
    value:
        global_batch_size: 64
        local_batch_size: 8
        mixed_precision_param: bfloat16
        seq_len: 8192
        steps: 3000
"""
