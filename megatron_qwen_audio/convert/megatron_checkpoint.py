"""Converted weights as a training checkpoint folder, written and read one tensor at a time.

An imported checkpoint is the folder `training/checkpointing.py` reads (`init_from: FOLDER` starts a run from it),
holding weights only: `model_optim/` is the megatron-core distributed checkpoint that a single-process TP=1, PP=1 run
would save, so megatron reshards it into any tensor/pipeline layout on load, exactly like a training checkpoint.

Streaming. megatron's own save stages every tensor of the state dict in memory first; for an 8.4B model that is one
full copy on top of the conversion's. Here megatron describes the checkpoint (keys, global shapes, chunks, its
common file and metadata, from the model built on the meta device: no weights), and torch's distributed-checkpoint
writer asks for each chunk's data only when it writes it (`_ProducingPlanner.resolve_data`), which is when the
conversion plan builds that tensor. Reading goes the other way: each tensor is read as a region of its global
tensor (one decoder layer of a stacked `decoder.layers.*` tensor), whatever layout saved it.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from importlib.metadata import version
from pathlib import Path

import torch

from megatron_qwen_audio.convert.tensor_files import ConversionError
from megatron_qwen_audio.convert.tensor_plan import TensorPlan, check_plan
from megatron_qwen_audio.runtime.parallel import ensure_single_process
from megatron_qwen_audio.training import checkpointing
from megatron_qwen_audio.training.config import (
    ConfigError,
    ModelConfig,
    ParallelConfig,
    TrainConfig,
    dump_config,
    load_config,
    validate_model_layout,
)

Region = tuple[str, tuple[int, ...]]  # (megatron key, offsets of its prepended axes, e.g. the decoder layer)


class ModelLayout:
    """Where each full-model tensor lives in a megatron checkpoint of `model`, from the model built on meta."""

    def __init__(self, model: ModelConfig, tensor_parallel: int, dtype: torch.dtype) -> None:
        from megatron.core.dist_checkpointing.mapping import ShardedTensor, apply_factories

        from megatron_qwen_audio.model.decoder_spec import transformer_config
        from megatron_qwen_audio.model.qwen_audio_model import QwenAudioModel

        ensure_single_process()
        # The vocabulary rows follow the target TP's padding; megatron's own partitioning sees one rank.
        parallel = ParallelConfig(tensor_parallel=tensor_parallel, device="cpu", precision="fp32")
        with torch.device("meta"):
            self.module = QwenAudioModel(model, transformer_config(model, parallel, "cpu")).to(dtype)
        self.shapes = {name: tensor.shape for name, tensor in self.module.state_dict().items()
                       if isinstance(tensor, torch.Tensor)}
        self.sharded = checkpointing.sharded_state_dict([self.module], None, is_loading=False)
        apply_factories(self.sharded)
        self.regions: dict[Region, str] = {}  # region -> full-model tensor name
        self.prepended: dict[str, int] = {}  # megatron key -> number of prepended axes
        for name, value in self.sharded["model0"].items():
            for shard in value if isinstance(value, list) else [value]:
                if isinstance(shard, ShardedTensor):
                    axes = shard.prepend_axis_num
                    self.regions[(shard.key, tuple(shard.global_offset[:axes]))] = name
                    self.prepended[shard.key] = axes
        # a gated fc1 has two shards (gate, up) in one region: the map back is one region per name
        self._region_of_name = {name: region for region, name in self.regions.items()}

    def region_of(self, name: str) -> Region:
        return self._region_of_name[name]


def _produce_chunks(layout: ModelLayout, plan: TensorPlan) -> Callable[[str, tuple, tuple], torch.Tensor]:
    """(megatron key, chunk offsets, chunk sizes) -> the chunk's data, building each plan tensor once."""
    last: dict[str, torch.Tensor] = {}

    def produce(key: str, offsets: tuple[int, ...], sizes: tuple[int, ...]) -> torch.Tensor:
        axes = layout.prepended[key]
        name = layout.regions[(key, offsets[:axes])]
        if name not in last:
            last.clear()
            last[name] = plan[name].build()
        chunk = last[name]
        for dim, (offset, size) in enumerate(zip(offsets[axes:], sizes[axes:])):
            chunk = chunk.narrow(dim, offset, size)
        return chunk.reshape(sizes)

    return produce


def _streaming_strategy(produce: Callable[[str, tuple, tuple], torch.Tensor]):
    """A megatron save strategy writing the torch_dist format with each chunk's data produced on demand."""
    import torch.distributed.checkpoint as dcp
    from megatron.core.dist_checkpointing.strategies.base import SaveShardedStrategy
    from megatron.core.dist_checkpointing.strategies.torch import (
        MCoreSavePlanner,
        _replace_state_dict_keys_with_sharded_keys,
        mcore_to_pyt_state_dict,
    )
    from torch.distributed.checkpoint.planner import WriteItemType

    class ProducingPlanner(MCoreSavePlanner):
        def resolve_data(self, write_item):
            if write_item.type == WriteItemType.BYTE_IO:
                return super().resolve_data(write_item)
            chunk = write_item.tensor_data.chunk
            data = produce(write_item.index.fqn, tuple(chunk.offsets), tuple(chunk.sizes))
            return data.to(write_item.tensor_data.properties.dtype).contiguous()

    class StreamingSave(SaveShardedStrategy):
        @property
        def can_handle_sharded_objects(self) -> bool:
            return True

        def save(self, sharded_state_dict, checkpoint_dir) -> None:
            state, _, _ = _replace_state_dict_keys_with_sharded_keys(sharded_state_dict, keep_only_main_replica=True)
            writer = dcp.FileSystemWriter(str(checkpoint_dir), single_file_per_rank=True, thread_count=1)
            dcp.save(mcore_to_pyt_state_dict(state, is_loading=False), storage_writer=writer,
                     planner=ProducingPlanner(flatten_state_dict=False), no_dist=True)

    return StreamingSave("torch_dist", 1)


def write_checkpoint(out: Path, model: ModelConfig, plan: TensorPlan, sources, *, dtype: torch.dtype,
                     parallel: ParallelConfig, provenance: Mapping, ignored=lambda name: False) -> Path:
    """Check the plan against `model`, then write the checkpoint folder `out` atomically (a `.tmp-` sibling renamed
    when complete; on any error nothing is left at `out`). `parallel` is the layout the weights are meant for: it is
    validated and recorded, and its TP fixes the vocabulary padding; the folder loads under any layout."""
    from megatron.core import dist_checkpointing

    config = TrainConfig(model=model, parallel=parallel)
    try:
        validate_model_layout(model, parallel, parallel.tensor_parallel * parallel.pipeline_parallel)
    except ConfigError as error:
        raise ConversionError(f"--tp/--pp/--stage-layers: {error}") from None
    if out.exists():
        raise ConversionError(f"{out} exists; choose a new output folder (a conversion never overwrites)")
    layout = ModelLayout(model, parallel.tensor_parallel, dtype)
    check_plan(plan, layout.shapes, sources, ignored)
    partial = out.with_name(f".tmp-{out.name}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        (partial / checkpointing.SHARDED_DIR).mkdir(parents=True)
        dist_checkpointing.save(layout.sharded, str(partial / checkpointing.SHARDED_DIR),
                                sharded_strategy=_streaming_strategy(_produce_chunks(layout, plan)))
        (partial / checkpointing.CONFIG_FILE).write_text(dump_config(config))
        (partial / checkpointing.STATE_FILE).write_text(json.dumps(
            {"scheduler": None, "loader": None, "extra": {}}, indent=1) + "\n")
        (partial / checkpointing.META_FILE).write_text(json.dumps({
            "format": checkpointing.FORMAT_VERSION, "step": 0, "seed": 0, "weights_only": True,
            "layout": {"tensor_parallel": parallel.tensor_parallel, "pipeline_parallel": parallel.pipeline_parallel},
            "dtype": str(dtype).removeprefix("torch."), "converted_from": dict(provenance),
            "versions": {package: version(package) for package in ("torch", "megatron-core")},
        }, indent=1) + "\n")
        (partial / checkpointing.COMPLETE_MARKER).write_text("ok\n")
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return out


class CheckpointReader:
    """Full-model tensors (TP=1, PP=1 names) of a checkpoint folder saved under any layout, read one at a time."""

    def __init__(self, path: str | Path) -> None:
        import torch.distributed.checkpoint as dcp

        try:
            self.folder = checkpointing.checkpoint_folder(path)
        except checkpointing.CheckpointError as error:
            raise ConversionError(str(error)) from None
        self.config = load_config(self.folder / checkpointing.CONFIG_FILE)
        self.model = self.config.model
        self._reader = dcp.FileSystemReader(str(self.folder / checkpointing.SHARDED_DIR))
        self._metadata = self._reader.read_metadata()
        self._reader.set_up_storage_reader(self._metadata, is_coordinator=True)
        self.layout = ModelLayout(self.model, 1, torch.float32)

    @property
    def names(self) -> list[str]:
        return list(self.layout.shapes)

    @property
    def path(self) -> Path:
        return self.folder

    def __contains__(self, name: str) -> bool:
        return name in self.layout.shapes

    def meta(self, name: str) -> torch.Tensor:
        """A meta tensor of the stored tensor's shape and dtype (nothing is read)."""
        key, prefix = self.layout.region_of(name)
        stored = self._stored(key)
        return torch.empty(tuple(stored.size)[len(prefix):], dtype=stored.properties.dtype, device="meta")

    def load(self, name: str) -> torch.Tensor:
        return self.read(name)

    def _stored(self, key: str):
        stored = self._metadata.state_dict_metadata.get(key)
        if stored is None:
            raise ConversionError(f"{self.folder}: tensor {key} is missing; the checkpoint does not match its "
                                  "config.yaml")
        return stored

    def read(self, name: str) -> torch.Tensor:
        """The full tensor `name` (its dtype as stored; vocabulary tensors with the rows the saving layout had)."""
        key, prefix = self.layout.region_of(name)
        stored = self._stored(key)
        shape = tuple(stored.size)[len(prefix):]
        target = torch.empty((1,) * len(prefix) + shape, dtype=stored.properties.dtype)
        self._read_region(key, prefix + (0,) * len(shape), target)
        return target.reshape(shape)

    def _read_region(self, key: str, offsets: tuple[int, ...], target: torch.Tensor) -> None:
        from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner
        from torch.distributed.checkpoint.metadata import ChunkStorageMetadata
        from torch.distributed.checkpoint.planner import LoadPlan
        from torch.distributed.checkpoint.planner_helpers import create_read_items_for_chunk_list

        chunk = ChunkStorageMetadata(offsets=torch.Size(offsets), sizes=target.shape)
        items = create_read_items_for_chunk_list(key, self._metadata.state_dict_metadata[key], [chunk])

        class RegionPlanner(DefaultLoadPlanner):
            def resolve_tensor(self, read_item):
                region = target
                for dim, (offset, length) in enumerate(zip(read_item.dest_offsets, read_item.lengths)):
                    region = region.narrow(dim, offset, length)
                return region

            def commit_tensor(self, read_item, tensor) -> None:
                pass

        plan = self._reader.prepare_global_plan([self._reader.prepare_local_plan(LoadPlan(items))])[0]
        self._reader.read_data(plan, RegionPlanner()).wait()
