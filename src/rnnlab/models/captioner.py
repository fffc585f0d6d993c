"""Image captioning, one-to-many (Show, Attend and Tell): a CNN reads the image into a grid of region features, and
the encoder–decoder's recurrent decoder (rnnlab/models/seq2seq.py) writes the caption, attending over the regions
as a translation attends over source words.

    regions    a_1..a_R = CNN([image; x; y])              (B, R, C), the R = h·w cells of the last feature map,
                                                            row by row; x, y ∈ [−1, 1] two coordinate channels
                                                            (CoordConv), so that a region's feature says where it is
               CNN = L × (conv 3×3 → batch norm → ReLU → max-pool 2×2): h = w = ⌊S / 2^L⌋; block l of L has
                     C / 2^(L−l) channels (at least 8), C = encoder_channels: wider as the map gets smaller
           or  a_1..a_R = ResNet(image)                  encoder=resnet18|resnet34|resnet50 (rnnlab/models/resnet.py):
                                                            layer4's map, h = w = ⌈S / 32⌉, C = 512 | 512 | 2048;
                                                            from scratch, or a torchvision weights file
                                                            (encoder_weights), trained on or frozen (freeze_encoder)
    initial    ā = (1/R) Σ_i a_i
               h_0 = tanh(W_h ā + b_h),  C_0 = W_C ā + b_C (LSTM)          one projection to all L decoder layers
    decoder    rnnlab/models/seq2seq.py's, with the regions as its source states h_e(s), every region real:
               input_t = [E y_{t-1}; c_t (bahdanau); h̃_{t-1} (input_feeding)], attention=none | bahdanau |
               luong_dot | luong_general | luong_concat over the R regions, logits_t = W_s h̃_t + b_s

Without attention the decoder sees the image only through h_0 (and C_0): the mean of the regions.

The decoder protocol is translation's, with the regions as its source: `regions(images)` once, then
`encode(regions, lengths)` and `step(prev_tokens, state, memory)` (rnnlab/decoding.py's greedy, sampling and
beam search take them unchanged; lengths are all R). `forward(images, tgt_in, caption_image)` is teacher
forcing: each image's regions are computed once and shared by its captions.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from rnnlab.errors import ConfigError, check_integer
from rnnlab.models import resnet
from rnnlab.models.seq2seq import DecoderState, Seq2Seq, Seq2SeqOutput
from rnnlab.nn.attention import Memory

log = logging.getLogger(__name__)

ENCODERS = ("cnn", *resnet.ARCHITECTURES)
IMAGENET_SIZE = 224  # the pixels per side torchvision's ImageNet weights were trained at
IMAGE_SUMMARIES = ("mean", "flatten")  # what the decoder's initial state is made from (model.image_summary)


class ConvEncoder(nn.Module):
    """image (B, 3, S, S) → region features (B, R, C): the CNN of the module docstring, trained from scratch."""

    def __init__(self, layers: int, channels: int):
        super().__init__()
        self.channels = channels  # C
        blocks, width = [], 3 + 2  # RGB and the two coordinate channels
        for layer in range(1, layers + 1):
            out = max(channels // 2 ** (layers - layer), min(channels, 8))
            blocks += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU(),
                       nn.MaxPool2d(2)]
            width = out
        self.blocks = nn.Sequential(*blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        B, _, H, W = images.shape
        y, x = torch.meshgrid(torch.linspace(-1, 1, H, device=images.device),
                              torch.linspace(-1, 1, W, device=images.device), indexing="ij")
        coordinates = torch.stack([x, y]).to(images.dtype).expand(B, 2, H, W)
        features = self.blocks(torch.cat([images, coordinates], dim=1))  # (B, C, h, w)
        return features.flatten(2).transpose(1, 2)  # (B, R, C), row by row


class Captioner(Seq2Seq):
    """See the module docstring. Vocabulary, special ids and the image size come from the data; the rest are
    `model.*` options: the encoder's (encoder; the CNN's encoder_layers and encoder_channels, which a ResNet ignores;
    encoder_weights, freeze_encoder) and the decoder's, which are translation's (cell, sizes, num_layers, dropout,
    input_feeding, tie_weights, teacher_forcing, backend, ...; the `attention` group). The recurrent models'
    encoder-side keys (bidirectional, learn_initial_state) are taken so that their YAMLs compose, and refused when
    set: the decoder reads left to right and starts from the image.

    encoder_weights is read here, when the network is built for training; a checkpoint holds the weights in its
    state dict, so restoring one (CaptioningTask.from_checkpoint_dict) builds it with encoder_weights=None.
    """

    def __init__(self, vocab_size: int, pad_id: int, bos_id: int, eos_id: int, image_size: int, encoder: str = "cnn",
                 encoder_layers: int = 3, encoder_channels: int = 64, encoder_weights: str | None = None,
                 freeze_encoder: bool = False, cell: str = "lstm", embedding_size: int = 128, hidden_size: int = 256,
                 num_layers: int = 1, dropout: float = 0.0, bidirectional: bool = False, input_feeding: bool = False,
                 tie_weights: bool = False, teacher_forcing: float = 1.0, attention: dict | None = None,
                 backend: str = "fused", nonlinearity: str = "tanh", forget_bias: float | str | None = None,
                 gru_form: str | None = None, leak: float | None = None, learn_leak: bool = False,
                 learn_initial_state: bool = False, skip: int | None = None, locked_dropout: bool = False,
                 recurrent_init: str = "default", chrono_max: float | None = None, image_summary: str = "mean"):
        if image_summary not in IMAGE_SUMMARIES:
            raise ConfigError(f"model.image_summary={image_summary!r} is invalid: choose one of "
                              f"{', '.join(IMAGE_SUMMARIES)}")
        grid = _check_encoder(encoder, encoder_layers, encoder_channels, encoder_weights, freeze_encoder, image_size)
        channels = encoder_channels if encoder == "cnn" else resnet.channels(encoder)  # C, a region's size
        for key, value in (("bidirectional", bidirectional), ("learn_initial_state", learn_initial_state)):
            if value:
                raise ConfigError(f"model.{key}={value} does not apply to task=captioning: the decoder reads left to "
                                  f"right and starts from the image (h_0 from its regions); set model.{key}=false")
        _check_attention(attention, channels, "model.encoder_channels" if encoder == "cnn" else encoder, hidden_size)
        super().__init__(src_vocab_size=1, tgt_vocab_size=vocab_size, pad_id=pad_id, bos_id=bos_id, eos_id=eos_id,
                         cell=cell, embedding_size=embedding_size, hidden_size=hidden_size, num_layers=num_layers,
                         dropout=dropout, encoder_hidden_size=channels, input_feeding=input_feeding,
                         tie_weights=tie_weights, teacher_forcing=teacher_forcing, attention=attention,
                         backend=backend, nonlinearity=nonlinearity, forget_bias=forget_bias, gru_form=gru_form,
                         leak=leak, learn_leak=learn_leak, skip=skip, locked_dropout=locked_dropout,
                         recurrent_init=recurrent_init, chrono_max=chrono_max)
        # the text encoder and its bridge that Seq2Seq built: the CNN and the projections of ā replace them
        del self.encoder, self.src_embedding, self.bridge_h, self.bridge_C
        self.grid = grid  # (h, w) of the regions, for pictures of where the decoder looks
        self.cnn = ConvEncoder(encoder_layers, encoder_channels) if encoder == "cnn" else resnet.resnet(encoder)
        if encoder_weights is not None:
            resnet.load_weights(self.cnn, encoder, encoder_weights)
            if image_size < IMAGENET_SIZE:
                full = resnet.ResNet.grid_side(IMAGENET_SIZE)
                log.warning("model.encoder_weights: ImageNet's weights learned from %d-pixel images; "
                            "data.image_size=%d shows them smaller objects and gives a %d×%d grid of regions "
                            "(%d pixels: %d×%d)",
                            IMAGENET_SIZE, image_size, *grid, IMAGENET_SIZE, full, full)
        self.image_summary = image_summary
        summary_size = channels * (grid[0] * grid[1] if image_summary == "flatten" else 1)
        self.init_h = nn.Linear(summary_size, num_layers * hidden_size)
        self.init_C = nn.Linear(summary_size, num_layers * hidden_size) if cell == "lstm" else None
        self.freeze_encoder = freeze_encoder
        self.cnn.requires_grad_(not freeze_encoder)
        self.train()  # Lightning trains a module in the mode it was built in: a frozen encoder's is eval already

    def train(self, mode: bool = True) -> Captioner:
        super().train(mode)
        if self.freeze_encoder:  # batch statistics of a small caption batch would overwrite ImageNet's running ones
            self.cnn.eval()
        return self

    def regions(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, S, S), normalised → region features (B, R, C)."""
        return self.cnn(images)

    def region_lengths(self, regions: torch.Tensor) -> torch.Tensor:
        """(B,) all R: every region is real (the attention mask is all true)."""
        return torch.full((regions.size(0),), regions.size(1), dtype=torch.long, device=regions.device)

    def encode(self, regions: torch.Tensor, lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        """regions (B, R, C) → the attention memory and the decoder's initial state, from ā."""
        memory = self.attention.remember(regions, lengths) if self.attention else Memory.of(regions, lengths)
        # ā (B, C), or every region in reading order (B, R·C): where each thing is, and how many there are
        summary = regions.flatten(1) if self.image_summary == "flatten" else regions.mean(dim=1)
        h_0 = self._per_layer(torch.tanh(self.init_h(summary)))
        rnn = (h_0, self._per_layer(self.init_C(summary))) if self.init_C is not None else h_0
        feed = regions.new_zeros(regions.size(0), self.hidden_size) if self.input_feeding else None
        return memory, DecoderState(rnn, feed)

    def _per_layer(self, states: torch.Tensor) -> torch.Tensor:
        """(B, L·H) → (L, B, H), torch's layout of a stack's states."""
        return states.view(states.size(0), self.num_layers, self.hidden_size).transpose(0, 1).contiguous()

    def forward(self, images: torch.Tensor, tgt_in: torch.Tensor, caption_image: torch.Tensor | None = None
                ) -> Seq2SeqOutput:
        """Teacher forcing: images (B, 3, S, S), tgt_in (N, T) = [bos, y_1 .. y_{T-1}], caption_image (N,) the image
        of each caption (None: caption k is of image k) → logits (N, T, V), attention (N, T, R) or None."""
        return self.captions(self.regions(images), tgt_in, caption_image)

    def captions(self, regions: torch.Tensor, tgt_in: torch.Tensor, caption_image: torch.Tensor | None = None
                 ) -> Seq2SeqOutput:
        """forward, from regions already computed."""
        if caption_image is not None:
            regions = regions.index_select(0, caption_image)  # (N, R, C)
        return super().forward(regions, self.region_lengths(regions), tgt_in)


def _check_encoder(encoder: str, layers: int, channels: int, weights: str | None, freeze: bool, image_size: int
                   ) -> tuple[int, int]:
    """ConfigError naming the first bad model.encoder* key; else the grid of regions (h, w)."""
    if encoder not in ENCODERS:
        raise ConfigError(f"model.encoder={encoder!r} is invalid: choose one of {', '.join(ENCODERS)}")
    for key, value in (("encoder_layers", layers), ("encoder_channels", channels)):
        check_integer(f"model.{key}", value)
    if not isinstance(freeze, bool):
        raise ConfigError(f"model.freeze_encoder={freeze!r} is invalid: must be true or false")
    if encoder != "cnn":
        side = resnet.ResNet.grid_side(image_size)
        return side, side
    if weights is not None:
        raise ConfigError(f"model.encoder_weights={weights} is a pretrained ResNet's, and model.encoder=cnn trains "
                          f"from scratch: set model.encoder to the ResNet the file holds "
                          f"({', '.join(resnet.ARCHITECTURES)}), or model.encoder_weights=null")
    side = image_size // 2**layers
    if side < 1:
        raise ConfigError(f"model.encoder_layers={layers} halves data.image_size={image_size} to nothing: use at most "
                          f"{image_size.bit_length() - 1} layers, or larger images")
    return side, side


def _check_attention(attention: dict | None, channels: int, encoder: str, hidden_size: int) -> None:
    kind = (attention or {}).get("type")
    if kind == "local":
        raise ConfigError("attention=local predicts a position along a sentence, and an image's regions form a grid: "
                          "use attention=bahdanau, luong_general, luong_concat or luong_dot")
    if kind == "luong_dot" and channels != hidden_size:
        raise ConfigError(f"attention=luong_dot scores h_t · a_i, so it needs the regions' size ({channels}, "
                          f"{encoder}) == model.hidden_size ({hidden_size}); set them equal, or use "
                          f"attention=luong_general")
