"""megatron-qwen-audio: Qwen-Audio style audio-language model training on megatron-core and DeepSpeed.

Exact versions live in constraints.txt (the one pinned place); here only compatible ranges, so that an existing
CUDA/NGC environment keeps its own torch build.
"""
from setuptools import find_packages, setup

setup(
    name="megatron-qwen-audio",
    version="0.1.0",
    description="Train Qwen-Audio style audio-language models at cluster scale on megatron-core and DeepSpeed",
    packages=find_packages(include=["megatron_qwen_audio", "megatron_qwen_audio.*", "data_prep", "data_prep.*"]),
    package_data={"megatron_qwen_audio.text": ["qwen_audio_special_tokens.json"],
                  "data_prep": ["qa_demonstrations.json"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "torchaudio>=2.4",
        "megatron-core>=0.14,<0.20",
        "deepspeed>=0.16",
        "transformers>=4.45",
        "webdataset>=0.2.90",
        "tiktoken>=0.6",
        "sentencepiece>=0.2",
        "wandb>=0.17",
        "soundfile>=0.12",
        "soxr>=0.3",
        "tqdm>=4.60",
        "jiwer>=3.0",
        "sacrebleu>=2.3",
        "matplotlib>=3.7",
        "pyyaml>=6.0",
        "numpy>=1.24",
        "openai>=1.40",
    ],
    extras_require={"dev": ["pytest>=8"]},
    entry_points={
        "console_scripts": [
            "mqa-build-shards=data_prep.build_shards:main",
            "mqa-make-manifest=data_prep.make_manifest:main",
            "mqa-make-qa=data_prep.make_qa:main",
            "mqa-stats=data_prep.shard_stats:main",
            "mqa-fetch-tokenizer=megatron_qwen_audio.text.fetch:main",
            "mqa-prepare-asterisk=data_prep.asterisk:main",
            "mqa-loader-dry-run=megatron_qwen_audio.data.dry_run:main",
            "mqa-train=megatron_qwen_audio.training.main:main",
            "mqa-convert=megatron_qwen_audio.convert.cli:main",
            "mqa-eval=megatron_qwen_audio.evaluation.cli:main",
            "mqa-report=megatron_qwen_audio.evaluation.report:main",
        ]
    },
)
