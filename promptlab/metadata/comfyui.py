"""ComfyUI's API-format ``prompt`` graph, read back to the prompts and settings that made the image.

Longer than 500 lines for a reason: the graph is read by one walker (``_ComfyGraph``) whose steps
(follow the latent back from the saved image, find the sampler, read its conditioning) share its
state and its findings; split across files, one algorithm would be read in pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from promptlab.errors import ImportMetadataError
from promptlab.metadata.parameters import ConditioningPrompt, GenerationParameters, matches_type, short

# ComfyUI nodes that turn text into conditioning, and the inputs holding their text.
_COMFYUI_TEXT_INPUTS = {
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": ("text_g", "text_l"),
    "CLIPTextEncodeSDXLRefiner": ("text",),
    "CLIPTextEncodeSD3": ("clip_l", "clip_g", "t5xxl"),
    "CLIPTextEncodeFlux": ("clip_l", "t5xxl"),
    "CLIPTextEncodeHunyuanDiT": ("bert", "mt5xl"),
}
_COMFYUI_SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced")
# Conditioning these nodes emit carries no text, whatever feeds them.
_COMFYUI_EMPTY_CONDITIONING = ("ConditioningZeroOut",)
# Inputs that carry a model, text encoder, conditioning or setting, not the picture being made.
_COMFYUI_SETTING_INPUTS = frozenset(
    {"model", "clip", "vae", "positive", "negative", "guider", "sampler", "sigmas", "noise", "control_net",
     "clip_vision", "clip_vision_output", "upscale_model", "style_model", "mask", "bbox_detector", "sam_model_opt"}
)  # fmt: skip
_COMFYUI_SETTING_PREFIXES = ("conditioning", "model", "clip", "vae")
# Inputs that carry the latent (or pixels) a node starts from, in the order they are followed.
_COMFYUI_LATENT_INPUTS = ("samples", "latent_image", "latent", "samples_to", "pixels", "image", "images")
# Nodes on the way from a sampler to the saved file that change nothing worth a note.
_COMFYUI_PLAIN_NODES = frozenset({"VAEDecode", "VAEDecodeTiled", "Reroute"})
# Inputs naming the checkpoint (or diffusion model) a loader loads.
_COMFYUI_CHECKPOINT_INPUTS = ("ckpt_name", "unet_name", "model_path")
# Conditioning nodes that give their prompts a place, strength or time span.
_COMFYUI_SCOPE_NODES = (
    "ConditioningSetArea", "ConditioningSetAreaPercentage", "ConditioningSetAreaStrength",
    "ConditioningSetMask", "ConditioningSetTimestepRange",
)  # fmt: skip


def parse_comfyui_prompt(graph: dict[str, Any], image_size: tuple[int, int] | None = None) -> GenerationParameters:
    """Read a ComfyUI API-format graph (the PNG's ``prompt`` chunk: node id -> {class_type, inputs}).

    The record is the sampler that makes the saved image, followed back from the save node
    (``SaveImage``, ``PreviewImage``...) to a KSampler, KSamplerAdvanced, SamplerCustom or
    SamplerCustomAdvanced; when the graph saves several images, the one of ``image_size`` (the
    file's own size) decides, else the last pass. From that sampler: its settings (through
    KSamplerSelect, BasicScheduler, RandomNoise and CFGGuider/BasicGuider for the custom ones),
    ``positive``/``negative`` through conditioning nodes to the text encoders (several prompts
    combined, by area or not, each land in ``prompts`` with their strength and area), ``model``
    through LoRA loaders (``loras``) to the checkpoint, ``latent_image`` to the latent's size.
    Whatever else shapes the image (other samplers, an img2img source, ControlNets, unCLIP,
    hypernetworks, upscales) is named in ``notes``. Raises ``ImportMetadataError`` naming the
    node when a link cannot be followed.
    """
    reader = _ComfyGraph(graph)
    found = _ComfyFindings()
    # 1. the sampler that makes the saved image
    sampler_id = reader.record_sampler(image_size, found)
    sampling = reader.sampling(sampler_id, found)
    where = f"sampler node {sampler_id}"
    # 2. its prompts, model and size
    positive = reader.prompt_parts(sampling.positive, f"{where} 'positive'", found)
    negative = [] if sampling.negative is None else reader.prompt_parts(sampling.negative, f"{where} 'negative'", found)
    model, loras = reader.model_chain(sampling.model, found)
    clip_skip = reader.clip_skip(positive, found)
    width, height = reader.latent_size(sampling.latent, found)
    # 3. the other samplers, and the prompts as a record
    reader.note_other_samplers(sampler_id, found)
    prompt, prompts = _comfyui_prompt_record(positive, "positive", found)
    negative_prompt, negative_prompts = _comfyui_prompt_record(negative, "negative", found)
    return GenerationParameters(
        prompt=prompt,
        negative_prompt=negative_prompt,
        steps=sampling.steps,
        sampler=sampling.sampler,
        scheduler=sampling.scheduler,
        cfg_scale=sampling.cfg,
        seed=sampling.seed,
        width=width,
        height=height,
        model=model,
        denoising_strength=sampling.denoise,
        clip_skip=clip_skip,
        extra=found.extra,
        source="comfyui",
        loras=tuple(loras),
        prompts=prompts,
        negative_prompts=negative_prompts,
        notes=tuple(found.notes),
    )


def _comfyui_prompt_record(
    parts: list[ConditioningPrompt], side: str, found: _ComfyFindings
) -> tuple[str, tuple[ConditioningPrompt, ...]]:
    """One prompt for the record, and all of them when the graph combined several."""
    if not parts:
        return "", ()
    if len(parts) == 1 and not parts[0].scope and parts[0].strength == 1.0:
        return parts[0].text, ()
    whole = [part for part in parts if not part.scope]
    chosen = whole[0] if len(whole) == 1 else parts[0]
    field_name = "prompts" if side == "positive" else "negative_prompts"
    if len(parts) == 1:
        found.note(
            f"the {side} prompt applies to {chosen.scope or 'the whole image'} at strength {chosen.strength:g} "
            f"(kept in {field_name}); promptlab renders it everywhere at strength 1"
        )
    else:
        which = "the one for the whole image" if len(whole) == 1 else "the first"
        found.note(
            f"the {side} conditioning combines {len(parts)} prompts, each kept in {field_name} with its strength "
            f"and area; the {side} prompt is node {chosen.node}'s ({which}), and promptlab renders only that one"
        )
    return chosen.text, tuple(parts)


def _link(value: object) -> tuple[str, int] | None:
    """(node id, output index) when ``value`` is a ComfyUI link ``[node_id, output]``, else None."""
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    ):
        return str(value[0]), value[1]
    return None


@dataclass
class _ComfyFindings:
    """What reading a graph found beyond the record's fields: notes in order, and A1111-named extras."""

    notes: list[str] = field(default_factory=list)
    extra: dict[str, str] = field(default_factory=dict)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


@dataclass
class _ComfySampling:
    """A sampler node's settings, and the links to what it samples with."""

    sampler: str | None = None
    scheduler: str | None = None
    steps: int | None = None
    cfg: float | None = None
    seed: int | None = None
    denoise: float | None = None
    model: object = None
    positive: object = None
    negative: object = None
    latent: object = None


class _ComfyGraph:
    """Walks an API-format ComfyUI graph; every failure names the node and input involved."""

    def __init__(self, graph: object) -> None:
        if not isinstance(graph, dict) or not all(
            isinstance(node, dict)
            and isinstance(node.get("class_type"), str)
            and isinstance(node.get("inputs"), dict)
            for node in graph.values()
        ):
            raise ImportMetadataError(
                "ComfyUI prompt: not an API-format graph (expected node id -> {class_type, inputs})"
            )
        self.graph: dict[str, dict[str, Any]] = {str(key): node for key, node in graph.items()}
        # output node -> the sampler that makes its image, filled by record_sampler
        self.saved: dict[str, str] = {}

    def class_type(self, node_id: str) -> str:
        return str(self.graph[node_id]["class_type"])

    def inputs(self, node_id: str) -> dict[str, Any]:
        return dict(self.graph[node_id]["inputs"])

    def node_ids(self) -> list[str]:
        # ComfyUI numbers nodes in creation order; "10" comes after "9"
        return sorted(self.graph, key=lambda node_id: (len(node_id), node_id))

    def target(self, value: object, where: str) -> str | None:
        """The node a link points at; None for a plain value; an error for a link to nowhere."""
        link = _link(value)
        if link is None:
            return None
        if link[0] not in self.graph:
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} links to node {link[0]}, which is not in the graph"
            )
        return link[0]

    def here(self, node_id: str) -> str:
        return f"node {node_id} ({self.class_type(node_id)})"

    def describe(self, node_id: str) -> str:
        """``node 17 (ControlNetApplyAdvanced: strength=0.6, control_net='canny.safetensors')``: settings, files."""
        settings = []
        for name, value in self.inputs(node_id).items():
            if _link(value) is None:
                if isinstance(value, (str, int, float)):
                    settings.append(f"{name}={short(value, 40)}")
            elif name in ("control_net", "image", "pixels", "clip_vision_output", "style_model", "upscale_model"):
                names = self._file_names(value)
                if names:
                    settings.append(f"{name}={', '.join(short(n, 60) for n in names)}")
        return f"node {node_id} ({self.class_type(node_id)}{': ' + ', '.join(settings) if settings else ''})"

    def _file_names(self, value: object, depth: int = 2) -> list[str]:
        """File names (model files, loaded images) at most ``depth`` links up from ``value``."""
        names: list[str] = []
        pending, seen = [(value, depth)], set()
        while pending:
            inner, left = pending.pop(0)
            link = _link(inner)
            if link is None or link[0] not in self.graph or link[0] in seen or left == 0:
                continue
            seen.add(link[0])
            if self.class_type(link[0]) in (*_COMFYUI_SAMPLERS, *_COMFYUI_PLAIN_NODES):
                continue  # a picture made in the graph, not a file
            for name, item in self.inputs(link[0]).items():
                if isinstance(item, str) and (name == "image" or name.endswith("_name")) and name != "sampler_name":
                    names.append(item)
                pending.append((item, left - 1))
        return list(dict.fromkeys(names))

    def samplers(self) -> list[str]:
        return [node_id for node_id in self.node_ids() if self.class_type(node_id) in _COMFYUI_SAMPLERS]

    def outputs(self) -> list[str]:
        """Nodes that write a picture out (SaveImage, PreviewImage and their kin)."""
        return [
            node_id
            for node_id in self.node_ids()
            if re.search(r"save|preview", self.class_type(node_id), re.IGNORECASE)
            and any(_link(value) for value in self.inputs(node_id).values())
        ]

    @staticmethod
    def _carries_picture(name: str) -> bool:
        return name not in _COMFYUI_SETTING_INPUTS and not name.startswith(_COMFYUI_SETTING_PREFIXES)

    def _behind(self, node_id: str, through_samplers: bool) -> tuple[list[str], list[str]]:
        """The samplers whose latent reaches ``node_id``, and the other nodes on the way, nearest first.

        Only inputs that carry a picture are followed; the walk stops at a sampler unless
        ``through_samplers``.
        """
        samplers: list[str] = []
        passed: list[str] = []
        pending = [value for name, value in self.inputs(node_id).items() if self._carries_picture(name)]
        seen = {node_id}
        while pending:
            link = _link(pending.pop(0))
            if link is None or link[0] not in self.graph or link[0] in seen:
                continue
            seen.add(link[0])
            is_sampler = self.class_type(link[0]) in _COMFYUI_SAMPLERS
            (samplers if is_sampler else passed).append(link[0])
            if through_samplers or not is_sampler:
                pending += [value for name, value in self.inputs(link[0]).items() if self._carries_picture(name)]
        return samplers, passed

    def upstream_samplers(self, sampler_id: str) -> list[str]:
        """Every sampler whose output ``sampler_id`` starts from, directly or through others."""
        return self._behind(sampler_id, through_samplers=True)[0]

    def record_sampler(self, image_size: tuple[int, int] | None, found: _ComfyFindings) -> str:
        """The sampler that makes the saved image (see ``parse_comfyui_prompt``), noting how it was chosen."""
        samplers = self.samplers()
        if not samplers:
            classes = sorted({self.class_type(node_id) for node_id in self.graph})
            raise ImportMetadataError(
                f"ComfyUI prompt: no sampler node ({', '.join(_COMFYUI_SAMPLERS)}); node classes: {classes}"
            )
        passed_by_output: dict[str, list[str]] = {}
        for output_id in self.outputs():
            behind, passed = self._behind(output_id, through_samplers=False)
            if behind:
                self.saved[output_id] = behind[0]
                passed_by_output[output_id] = passed
        candidates: list[tuple[str | None, str]] = list(self.saved.items()) or [(None, s) for s in samplers]
        how = "they all come from that sampler"
        if image_size is not None and len({s for _, s in candidates}) > 1:
            sized = [
                (o, s) for o, s in candidates if self.latent_size(self.inputs(s).get("latent_image")) == image_size
            ]
            if sized and len({s for _, s in sized}) < len({s for _, s in candidates}):
                candidates, how = sized, f"this file's size, {image_size[0]}x{image_size[1]}, is that image's"
        if len({s for _, s in candidates}) > 1:
            last = [(o, s) for o, s in candidates if not any(s in self.upstream_samplers(t) for _, t in candidates)]
            candidates = last or candidates
            how = "promptlab cannot tell which one this file is, and takes the last pass"
        output_id, sampler_id = candidates[0]
        if len(samplers) > 1 or len(self.saved) > 1:
            made = f", which makes the image saved by {self.here(output_id)}" if output_id else ""
            if not self.saved:
                made = " (the graph saves no image; promptlab takes the last pass)"
            found.note(f"the record is sampler {self.here(sampler_id)}{made}")
        if len(self.saved) > 1:
            saves = ", ".join(f"node {o}" for o in self.saved)
            found.note(f"the graph saves {len(self.saved)} images ({saves}); {how}")
        for node_id in passed_by_output.get(output_id or "", []):
            self._note_after_sampling(node_id, found)
        return sampler_id

    def _note_after_sampling(self, node_id: str, found: _ComfyFindings) -> None:
        class_type, inputs = self.class_type(node_id), self.inputs(node_id)
        if class_type in _COMFYUI_PLAIN_NODES:
            vae_id = self.target(inputs.get("vae"), f"{self.here(node_id)} 'vae'")
            if vae_id is not None and "vae_name" in self.inputs(vae_id):
                vae = self.scalar(self.inputs(vae_id)["vae_name"], str, f"{self.here(vae_id)} 'vae_name'")
                found.extra["VAE"] = str(vae)
            return
        found.note(f"after sampling, the saved image goes through {self.describe(node_id)}; promptlab does not do that")

    def sampling(self, node_id: str, found: _ComfyFindings) -> _ComfySampling:
        """Sampler ``node_id``'s settings, read through the nodes the custom samplers link to."""
        class_type, inputs = self.class_type(node_id), self.inputs(node_id)
        where = f"sampler node {node_id}"
        out = _ComfySampling(
            model=inputs.get("model"), positive=inputs.get("positive"), negative=inputs.get("negative"),
            latent=inputs.get("latent_image"),
        )  # fmt: skip
        if class_type in ("KSampler", "KSamplerAdvanced"):
            out.sampler = self.scalar(inputs.get("sampler_name"), str, f"{where} 'sampler_name'")
            out.scheduler = self.scalar(inputs.get("scheduler"), str, f"{where} 'scheduler'")
            out.steps = self.scalar(inputs.get("steps"), int, f"{where} 'steps'")
            out.cfg = self.scalar(inputs.get("cfg"), float, f"{where} 'cfg'")
        if class_type == "KSampler":
            out.seed = self.scalar(inputs.get("seed"), int, f"{where} 'seed'")
            out.denoise = self.scalar(inputs.get("denoise"), float, f"{where} 'denoise'")
        elif class_type == "KSamplerAdvanced":
            self._advanced_steps(node_id, out, found)
        elif class_type == "SamplerCustom":
            if inputs.get("add_noise") is False:
                found.note(f"{where} adds no noise: it goes on denoising the latent it is given; seed left unset")
            else:
                out.seed = self.scalar(inputs.get("noise_seed"), int, f"{where} 'noise_seed'")
            out.cfg = self.scalar(inputs.get("cfg"), float, f"{where} 'cfg'")
        elif class_type == "SamplerCustomAdvanced":
            self._noise(inputs.get("noise"), out, where, found)
            self._guider(inputs.get("guider"), out, where, found)
        if class_type in ("SamplerCustom", "SamplerCustomAdvanced"):
            self._custom_sampler(inputs.get("sampler"), out, where, found)
            self._sigmas(inputs.get("sigmas"), out, where, found)
        return out

    def _advanced_steps(self, node_id: str, out: _ComfySampling, found: _ComfyFindings) -> None:
        inputs, where = self.inputs(node_id), f"sampler node {node_id}"
        if self.scalar(inputs.get("add_noise"), str, f"{where} 'add_noise'") == "disable":
            found.note(f"{where} adds no noise: it goes on denoising the latent it is given; seed left unset")
        else:
            out.seed = self.scalar(inputs.get("noise_seed"), int, f"{where} 'noise_seed'")
        start = self.scalar(inputs.get("start_at_step"), int, f"{where} 'start_at_step'") or 0
        end = self.scalar(inputs.get("end_at_step"), int, f"{where} 'end_at_step'")
        if out.steps is not None and (start > 0 or (end is not None and end < out.steps)):
            last = out.steps if end is None else min(end, out.steps)
            found.note(f"{where} runs only steps {start} to {last} of {out.steps}")
        leftover = self.scalar(inputs.get("return_with_leftover_noise"), str, f"{where} 'return_with_leftover_noise'")
        if leftover == "enable":
            found.note(f"{where} hands on its latent with the noise left in, for another sampler to finish")

    def _noise(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'noise'")
        if node_id is None:
            return
        inputs = self.inputs(node_id)
        if "noise_seed" in inputs:
            out.seed = self.scalar(inputs["noise_seed"], int, f"{self.here(node_id)} 'noise_seed'")
        else:
            found.note(f"{where} takes its noise from {self.describe(node_id)}; seed left unset")

    def _guider(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'guider'")
        if node_id is None:
            raise ImportMetadataError(f"ComfyUI prompt: {where} 'guider' is {value!r}, not a link to a guider node")
        class_type, inputs = self.class_type(node_id), self.inputs(node_id)
        out.model = inputs.get("model")
        if class_type == "BasicGuider":
            # no classifier-free guidance: one pass on the conditioning, which is CFG scale 1
            out.positive, out.cfg = inputs.get("conditioning"), 1.0
        elif "positive" in inputs:
            out.positive, out.negative = inputs["positive"], inputs.get("negative")
            out.cfg = self.scalar(inputs.get("cfg"), float, f"{self.here(node_id)} 'cfg'")
            if class_type != "CFGGuider":
                found.note(
                    f"{where} is guided by {self.describe(node_id)}; promptlab reads its positive, negative and cfg only"
                )
        elif "cond1" in inputs:
            out.positive, out.negative = inputs["cond1"], inputs.get("negative")
            out.cfg = self.scalar(inputs.get("cfg_conds"), float, f"{self.here(node_id)} 'cfg_conds'")
            second = self.prompt_parts(inputs.get("cond2"), f"{self.here(node_id)} 'cond2'", _ComfyFindings())
            texts = "; ".join(short(part.text) for part in second)
            found.note(
                f"{where} is guided by {self.describe(node_id)}, which adds a second positive ({texts}); "
                f"promptlab reads cond1 only"
            )
        else:
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} 'guider' comes from {self.here(node_id)}, which promptlab cannot read "
                f"(it reads CFGGuider, BasicGuider, DualCFGGuider and guiders with positive, negative and cfg)"
            )

    def _custom_sampler(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'sampler'")
        if node_id is None:
            return
        inputs = self.inputs(node_id)
        if "sampler_name" in inputs:
            out.sampler = self.scalar(inputs["sampler_name"], str, f"{self.here(node_id)} 'sampler_name'")
        else:
            found.note(f"{where} samples with {self.describe(node_id)}; sampler left unset")

    def _sigmas(self, value: object, out: _ComfySampling, where: str, found: _ComfyFindings) -> None:
        node_id = self.target(value, f"{where} 'sigmas'")
        seen: set[str] = set()
        while node_id is not None and node_id not in seen and "sigmas" in self.inputs(node_id):
            seen.add(node_id)
            found.note(f"{where} samples a noise schedule cut or changed by {self.describe(node_id)}")
            node_id = self.target(self.inputs(node_id)["sigmas"], f"{self.here(node_id)} 'sigmas'")
        if node_id is None:
            return
        inputs, here = self.inputs(node_id), self.here(node_id)
        out.steps = self.scalar(inputs.get("steps"), int, f"{here} 'steps'")
        out.denoise = self.scalar(inputs.get("denoise"), float, f"{here} 'denoise'")
        if "scheduler" in inputs:
            out.scheduler = self.scalar(inputs["scheduler"], str, f"{here} 'scheduler'")
        else:
            found.note(f"{where} takes its noise schedule from {self.describe(node_id)}; scheduler left unset")

    def note_other_samplers(self, record_id: str, found: _ComfyFindings) -> None:
        """Name every sampler but ``record_id``, with its settings and what its output becomes."""
        upstream = self.upstream_samplers(record_id)
        for node_id in self.samplers():
            if node_id == record_id:
                continue
            roles = []
            if node_id in upstream:
                roles.append("the record's sampling starts from its output")
            saves = [output_id for output_id, sampler_id in self.saved.items() if sampler_id == node_id]
            if saves:
                roles.append(f"it makes the image saved by node {', '.join(saves)}")
            role = "; ".join(roles) if roles else "its output does not reach the saved image"
            found.note(f"{self.here(node_id)} also samples{self._summary(node_id)}: {role}; it is not in this record")

    def _summary(self, node_id: str) -> str:
        try:
            sampling = self.sampling(node_id, _ComfyFindings())
            prompt = self.prompt_parts(sampling.positive, self.here(node_id), _ComfyFindings())
        except ImportMetadataError:
            return ""
        settings = [
            f"{sampling.sampler}/{sampling.scheduler}" if sampling.sampler else None,
            f"{sampling.steps} steps" if sampling.steps is not None else None,
            f"cfg {sampling.cfg:g}" if sampling.cfg is not None else None,
            f"seed {sampling.seed}" if sampling.seed is not None else None,
            f"denoise {sampling.denoise:g}" if sampling.denoise is not None else None,
            f"prompt {short(prompt[0].text, 40)}" if prompt else None,
            f"and {len(prompt) - 1} more prompts" if len(prompt) > 1 else None,
        ]
        return " (" + ", ".join(item for item in settings if item) + ")"

    def scalar(self, value: object, kind: type, where: str, seen: frozenset[str] = frozenset()) -> Any:
        """A widget value, following links to nodes that hold one value (primitive, string, seed nodes)."""
        node_id = self.target(value, where)
        if node_id is None:
            if value is None:
                return None
            if not matches_type(value, kind):
                expected = "text" if kind is str else kind.__name__
                raise ImportMetadataError(f"ComfyUI prompt: {where} is {value!r}; expected {expected}")
            return float(value) if kind is float else value  # type: ignore[arg-type]
        if node_id in seen:
            raise ImportMetadataError(f"ComfyUI prompt: {where} follows a cycle through node {node_id}")
        inputs = self.inputs(node_id)
        candidates = list(inputs.items())
        if len(candidates) != 1:
            candidates = [(name, inner) for name, inner in candidates if matches_type(inner, kind)]
            if len(candidates) != 1 or any(_link(inner) for inner in inputs.values()):
                raise ImportMetadataError(
                    f"ComfyUI prompt: {where} links to node {node_id} ({self.class_type(node_id)}), "
                    f"which is not a simple value node (inputs: {sorted(inputs)}); promptlab cannot "
                    f"compute its output"
                )
        name, inner = candidates[0]
        return self.scalar(inner, kind, f"node {node_id} '{name}'", seen | {node_id})

    def prompt_parts(
        self, value: object, where: str, found: _ComfyFindings, seen: frozenset[str] = frozenset()
    ) -> list[ConditioningPrompt]:
        """The prompts a conditioning link carries, each with the strength and area the graph gives it."""
        node_id = self.target(value, where)
        if node_id is None:
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} is {value!r}, not a link to a conditioning node"
            )
        if node_id in seen:
            raise ImportMetadataError(f"ComfyUI prompt: {where} follows a cycle through node {node_id}")
        class_type, inputs, here = self.class_type(node_id), self.inputs(node_id), self.here(node_id)
        seen = seen | {node_id}
        if class_type in _COMFYUI_EMPTY_CONDITIONING:
            return []
        conditioned = any(name.startswith("conditioning") for name in inputs)
        text_inputs = _COMFYUI_TEXT_INPUTS.get(class_type) or (
            ("text",) if "text" in inputs and not conditioned else ()
        )
        if text_inputs:
            return [self._encoded_text(node_id, text_inputs, found)]
        if class_type in _COMFYUI_SCOPE_NODES:
            inner = self.prompt_parts(inputs.get("conditioning"), f"{here} 'conditioning'", found, seen)
            return [self._scoped(node_id, part) for part in inner]
        if class_type == "ConditioningAverage":
            share = self.scalar(inputs.get("conditioning_to_strength"), float, f"{here} 'conditioning_to_strength'")
            share = 1.0 if share is None else share
            found.note(
                f"{here} averages the embeddings of its prompts ({share:g} : {1 - share:g}); promptlab cannot render that"
            )
            to = self.prompt_parts(inputs.get("conditioning_to"), f"{here} 'conditioning_to'", found, seen)
            source = self.prompt_parts(inputs.get("conditioning_from"), f"{here} 'conditioning_from'", found, seen)
            return [replace(p, strength=p.strength * share) for p in to] + [
                replace(p, strength=p.strength * (1 - share)) for p in source
            ]
        if class_type == "ConditioningConcat":
            found.note(f"{here} puts the embeddings of its prompts one after the other (as A1111's BREAK does)")
        if _link(inputs.get("positive")) and _link(inputs.get("negative")):
            # ControlNetApplyAdvanced and kin: output 0 is the positive, output 1 the negative
            side = "positive" if _link(value) == (node_id, 0) else "negative"
            found.note(f"{self.describe(node_id)} changes the conditioning; promptlab does not carry it over")
            return self.prompt_parts(inputs[side], f"{here} '{side}'", found, seen)
        upstream = [(name, inner) for name, inner in inputs.items() if name.startswith("conditioning") and _link(inner)]
        if not upstream:
            known = sorted({name for names in _COMFYUI_TEXT_INPUTS.values() for name in names})
            raise ImportMetadataError(
                f"ComfyUI prompt: {where} comes from {here}, which has no text input promptlab knows "
                f"({', '.join(known)}) and no conditioning input to follow"
            )
        if class_type == "FluxGuidance":
            guidance = self.scalar(inputs.get("guidance"), float, f"{here} 'guidance'")
            if guidance is not None:
                found.extra["Distilled CFG Scale"] = f"{guidance:g}"
        elif class_type not in ("ConditioningCombine", "ConditioningConcat"):
            found.note(f"{self.describe(node_id)} changes the conditioning; promptlab does not carry it over")
        parts: list[ConditioningPrompt] = []
        for name, inner in upstream:
            parts += self.prompt_parts(inner, f"{here} '{name}'", found, seen)
        return parts

    def _encoded_text(self, node_id: str, text_inputs: tuple[str, ...], found: _ComfyFindings) -> ConditioningPrompt:
        inputs, here = self.inputs(node_id), self.here(node_id)
        texts = {name: self.scalar(inputs[name], str, f"{here} '{name}'") for name in text_inputs if name in inputs}
        distinct = list(dict.fromkeys(text for text in texts.values() if text and text.strip()))
        if len(distinct) > 1:
            shown = "; ".join(f"{name}: {short(text, 40)}" for name, text in texts.items() if text)
            found.note(f"{here} gives its text encoders different texts ({shown}); the record keeps the first")
        if "guidance" in inputs:
            guidance = self.scalar(inputs["guidance"], float, f"{here} 'guidance'")
            if guidance is not None:
                found.extra["Distilled CFG Scale"] = f"{guidance:g}"
        return ConditioningPrompt(distinct[0] if distinct else "", node=node_id)

    def _scoped(self, node_id: str, part: ConditioningPrompt) -> ConditioningPrompt:
        """``part`` as the area, mask, strength or timestep node ``node_id`` sets it."""
        class_type, inputs, here = self.class_type(node_id), self.inputs(node_id), self.here(node_id)

        def number(name: str) -> float:
            value = self.scalar(inputs.get(name), float, f"{here} '{name}'")
            return 0.0 if value is None else value

        strength = self.scalar(inputs.get("strength"), float, f"{here} 'strength'")
        part = part if strength is None else replace(part, strength=strength)
        if class_type == "ConditioningSetArea":
            scope = f"{number('width'):g}x{number('height'):g} at x={number('x'):g}, y={number('y'):g}"
        elif class_type == "ConditioningSetAreaPercentage":
            size = f"{number('width'):.0%}x{number('height'):.0%}"
            scope = f"{size} of the image at x={number('x'):.0%}, y={number('y'):.0%}"
        elif class_type == "ConditioningSetMask":
            mask = self.target(inputs.get("mask"), f"{here} 'mask'")
            scope = f"the mask from {self.describe(mask) if mask else 'nowhere'}"
        elif class_type == "ConditioningSetTimestepRange":
            scope = f"steps {number('start'):.0%}-{number('end'):.0%}"
        else:
            return part
        if class_type == "ConditioningSetTimestepRange" and part.scope:
            return replace(part, scope=f"{part.scope}, {scope}")
        # an outer area replaces an inner one, as ComfyUI sets it
        return replace(part, scope=scope)

    def model_chain(self, value: object, found: _ComfyFindings) -> tuple[str | None, list[tuple[str, float]]]:
        """The checkpoint ``value`` comes from, and the LoRAs loaded on the way, in the order applied."""
        loras: list[tuple[str, float]] = []
        seen: set[str] = set()
        while (node_id := self.target(value, "model")) is not None and node_id not in seen:
            seen.add(node_id)
            inputs, here = self.inputs(node_id), self.here(node_id)
            checkpoint = next((name for name in _COMFYUI_CHECKPOINT_INPUTS if name in inputs), None)
            if checkpoint is not None:
                loras.reverse()
                return self.scalar(inputs[checkpoint], str, f"{here} '{checkpoint}'"), loras
            if "lora_name" in inputs:
                loras.append(self._lora(node_id, found))
            elif self.class_type(node_id) not in _COMFYUI_PLAIN_NODES:
                found.note(f"{self.describe(node_id)} changes the model; promptlab does not carry it over")
            value = inputs.get("model", inputs.get("model1"))
        loras.reverse()
        return None, loras

    def _lora(self, node_id: str, found: _ComfyFindings) -> tuple[str, float]:
        inputs, here = self.inputs(node_id), self.here(node_id)
        name = self.scalar(inputs["lora_name"], str, f"{here} 'lora_name'")
        key = "strength_model" if "strength_model" in inputs else "strength"
        strength = self.scalar(inputs.get(key), float, f"{here} '{key}'")
        strength = 1.0 if strength is None else strength
        clip_strength = self.scalar(inputs.get("strength_clip"), float, f"{here} 'strength_clip'")
        if clip_strength is not None and clip_strength != strength:
            found.note(
                f"LoRA {name!r} ({here}) has strength {strength:g} on the model and {clip_strength:g} on the "
                f"text encoder; loras keeps the model's"
            )
        return name, strength

    def clip_skip(self, parts: list[ConditioningPrompt], found: _ComfyFindings) -> int | None:
        """A1111's "Clip skip" from a CLIPSetLastLayer before the first prompt's text encoder."""
        if not parts:
            return None
        value = self.inputs(parts[0].node).get("clip")
        seen: set[str] = set()
        while (node_id := self.target(value, "clip")) is not None and node_id not in seen:
            seen.add(node_id)
            inputs, here = self.inputs(node_id), self.here(node_id)
            if "stop_at_clip_layer" in inputs:
                layer = self.scalar(inputs["stop_at_clip_layer"], int, f"{here} 'stop_at_clip_layer'")
                return None if layer is None else -layer
            names = [inputs[name] for name in inputs if name.startswith("clip_name") and isinstance(inputs[name], str)]
            if names:
                found.extra["Text encoders"] = ", ".join(names)
            if any(name in inputs for name in _COMFYUI_CHECKPOINT_INPUTS) or names:
                return None
            value = inputs.get("clip")
        return None

    def latent_size(self, value: object, found: _ComfyFindings | None = None) -> tuple[int | None, int | None]:
        """The pixel size of the latent ``value`` links to, noting where it comes from when not an empty latent."""
        found = found or _ComfyFindings()
        size: tuple[float, float] | None = None
        scale = 1.0
        seen: set[str] = set()
        # past an earlier sampler, only its size matters: what made its latent is its own story
        past_sampler = False
        while (node_id := self.target(value, "latent_image")) is not None and node_id not in seen:
            seen.add(node_id)
            class_type, inputs, here = self.class_type(node_id), self.inputs(node_id), self.here(node_id)
            if class_type in _COMFYUI_SAMPLERS:
                past_sampler = True
            elif class_type.startswith("VAEEncode"):
                if not past_sampler:
                    found.note(f"img2img: the sampling starts from a picture, encoded by {self.describe(node_id)}")
                break
            else:
                if size is None and "width" in inputs and "height" in inputs:
                    width = self.scalar(inputs["width"], int, f"{here} 'width'")
                    height = self.scalar(inputs["height"], int, f"{here} 'height'")
                    size = None if width is None or height is None else (width * scale, height * scale)
                elif size is None and "scale_by" in inputs:
                    scale *= self.scalar(inputs["scale_by"], float, f"{here} 'scale_by'") or 1.0
                if class_type.startswith("Empty"):
                    break
                if not past_sampler:
                    found.note(f"the sampled latent comes through {self.describe(node_id)}")
            if past_sampler and size is not None:
                break
            value = next((inputs[name] for name in _COMFYUI_LATENT_INPUTS if _link(inputs.get(name))), None)
        if size is None:
            return None, None
        return round(size[0]), round(size[1])
