"""keras-hub and kimm backbones with random weights, saved as .keras (Keras 3).

    python tools/corpus/gen_hub_kimm.py [--source keras_hub|kimm|both] [--only NAME,..] [--list]

kimm builds each published architecture by name (``kimm.models.ResNet50(weights=None)``).
keras-hub's backbones take their architecture as constructor arguments and keep the real
ones in presets that are downloaded; offline, the configs below are the published
architectures' numbers written out here (ResNet, VGG, DenseNet, ViT, DeiT, Swin, DINOv2,
MiT, CSPDarkNet), or, where noted, the class docstring's example config (real code, a
smaller configuration).  Every model is saved twice: ``NAME.keras`` as the library saves
it (a keras-hub Backbone / kimm BaseModel is a Functional subclass whose config is its
constructor arguments, not its layer graph), and ``NAME.functional.keras``: the same
layers re-wrapped in a plain ``keras.Model(inputs, outputs)``, whose config lists the
layers (custom layers of the library stay custom classes).  Files go to
``<corpus>/keras_hub/`` and ``<corpus>/kimm/``.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Manifest, MacCounter, corpus_dir, input_hw  # noqa: E402

IMG = (224, 224, 3)

# name -> (backbone class, kwargs, config provenance)
HUB = {
    "resnet18": ("ResNetBackbone", dict(input_conv_filters=[64], input_conv_kernel_sizes=[7],
                 stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[2, 2, 2, 2],
                 stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block", image_shape=IMG),
                 "ResNet-18 (He et al. 2016)"),
    "resnet50": ("ResNetBackbone", dict(input_conv_filters=[64], input_conv_kernel_sizes=[7],
                 stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
                 stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block", image_shape=IMG),
                 "ResNet-50 v1"),
    "resnet50_v2": ("ResNetBackbone", dict(input_conv_filters=[64], input_conv_kernel_sizes=[7],
                    stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
                    stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
                    use_pre_activation=True, image_shape=IMG), "ResNet-50 v2 (pre-activation)"),
    "resnet50_vd": ("ResNetBackbone", dict(input_conv_filters=[32, 32, 64], input_conv_kernel_sizes=[3, 3, 3],
                    stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
                    stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block_vd", image_shape=IMG),
                    "ResNet-50-vd (Bag of Tricks, 3x3 deep stem, avg-pool shortcut)"),
    "vgg16": ("VGGBackbone", dict(stackwise_num_repeats=[2, 2, 3, 3, 3],
              stackwise_num_filters=[64, 128, 256, 512, 512], image_shape=IMG), "VGG-16 (no head)"),
    "densenet121": ("DenseNetBackbone", dict(stackwise_num_repeats=[6, 12, 24, 16], image_shape=IMG),
                    "DenseNet-121"),
    "vit_b16": ("ViTBackbone", dict(image_shape=IMG, patch_size=16, num_layers=12, num_heads=12,
                hidden_dim=768, mlp_dim=3072), "ViT-B/16"),
    "deit_tiny": ("DeiTBackbone", dict(image_shape=(384, 384, 3), patch_size=16, num_layers=12, num_heads=3,
                  hidden_dim=192, intermediate_dim=768), "DeiT-Tiny (384 input as the preset)"),
    "swin_tiny": ("SwinTransformerBackbone", dict(image_shape=IMG, embed_dim=96, depths=[2, 2, 6, 2],
                  num_heads=[3, 6, 12, 24], window_size=7), "Swin-T"),
    "dinov2_small": ("DINOV2Backbone", dict(patch_size=14, num_layers=12, hidden_dim=384, num_heads=6,
                     intermediate_dim=1536, image_shape=IMG), "DINOv2 ViT-S/14"),
    "mit_b0": ("MiTBackbone", dict(layerwise_depths=[2, 2, 2, 2], num_layers=4, layerwise_num_heads=[1, 2, 5, 8],
               layerwise_sr_ratios=[8, 4, 2, 1], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3, 3, 3],
               layerwise_strides=[4, 2, 2, 2], hidden_dims=[32, 64, 160, 256], image_shape=IMG),
               "MiT-B0 (SegFormer encoder)"),
    "cspdarknet53": ("CSPNetBackbone", dict(stem_filters=32, stem_kernel_size=3, stem_strides=1,
                     stackwise_depth=[1, 2, 8, 8, 4], stackwise_strides=2,
                     stackwise_num_filters=[64, 128, 256, 512, 1024], block_type="dark_block",
                     stage_type="csp", bottle_ratio=[0.5], block_ratio=[1.0], expand_ratio=[2.0],
                     down_growth=True, cross_linear=True, image_shape=IMG),
                     "CSPDarkNet-53 (timm cspdarknet53 numbers)"),
    "xception_docstring": ("XceptionBackbone", dict(stackwise_conv_filters=[[32, 64], [64, 128], [256, 256]],
                           stackwise_pooling=[True, True, False], image_shape=IMG), "class docstring example"),
    "hgnetv2_docstring": ("HGNetV2Backbone", dict(depths=[1, 2, 4], embedding_size=32, hidden_sizes=[64, 128, 256],
                          stem_channels=[3, 16, 32], hidden_act="relu", use_learnable_affine_block=False,
                          stackwise_stage_filters=[(32, 16, 64, 1, 1, 3), (64, 32, 128, 2, 1, 3),
                                                   (128, 64, 256, 4, 1, 3)],
                          apply_downsample=[False, True, True], use_lightweight_conv_block=[False, False, False],
                          image_shape=IMG), "class docstring example"),
    "mobilenetv3_small_docstring": ("MobileNetBackbone", dict(
        stackwise_expansion=[[40, 56], [64, 144, 144], [72, 72], [144, 288, 288]],
        stackwise_num_blocks=[2, 3, 2, 3],
        stackwise_num_filters=[[16, 16], [24, 24, 24], [24, 24], [48, 48, 48]],
        stackwise_kernel_size=[[3, 3], [5, 5, 5], [5, 5], [5, 5, 5]],
        stackwise_num_strides=[[2, 1], [2, 1, 1], [1, 1], [2, 1, 1]],
        stackwise_se_ratio=[[None, None], [0.25, 0.25, 0.25], [0.3, 0.3], [0.3, 0.25, 0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish"] * 3, ["hard_swish"] * 2, ["hard_swish"] * 3],
        stackwise_padding=[[1, 1], [2, 2, 2], [2, 2], [2, 2, 2]],
        output_num_filters=288, input_activation="hard_swish", output_activation="hard_swish",
        input_num_filters=16, image_shape=IMG, depthwise_filters=8, depthwise_stride=2,
        depthwise_residual=False, last_layer_filter=288, squeeze_and_excite=0.5),
        "class docstring example (+ the arguments it omits)"),
    "efficientnet_b0": ("EfficientNetBackbone", dict(
        stackwise_width_coefficients=[1.0] * 7, stackwise_depth_coefficients=[1.0] * 7,
        stackwise_kernel_sizes=[3, 3, 5, 3, 5, 5, 3], stackwise_num_repeats=[1, 2, 2, 3, 3, 4, 1],
        stackwise_input_filters=[32, 16, 24, 40, 80, 112, 192],
        stackwise_output_filters=[16, 24, 40, 80, 112, 192, 320],
        stackwise_expansion_ratios=[1, 6, 6, 6, 6, 6, 6], stackwise_squeeze_and_excite_ratios=[0.25] * 7,
        stackwise_strides=[1, 2, 2, 2, 1, 2, 1], stackwise_block_types=["v1"] * 7,
        input_shape=IMG), "EfficientNet-B0 (Tan & Le 2019, Table 1)"),
    "efficientnetv2_b0": ("EfficientNetBackbone", dict(
        stackwise_width_coefficients=[1.0] * 6, stackwise_depth_coefficients=[1.0] * 6,
        stackwise_kernel_sizes=[3, 3, 3, 3, 3, 3], stackwise_num_repeats=[1, 2, 2, 3, 5, 8],
        stackwise_input_filters=[32, 16, 32, 48, 96, 112], stackwise_output_filters=[16, 32, 48, 96, 112, 192],
        stackwise_expansion_ratios=[1, 4, 4, 4, 6, 6], stackwise_squeeze_and_excite_ratios=[0, 0, 0, 0.25, 0.25, 0.25],
        stackwise_strides=[1, 2, 2, 2, 1, 2], stackwise_block_types=["fused"] * 3 + ["unfused"] * 3,
        stackwise_force_input_filters=[0] * 6, stackwise_nores_option=[False] * 6,
        input_shape=IMG), "EfficientNetV2-B0 (keras.applications numbers)"),
}

KIMM = [
    "ResNet18", "ResNet50", "MobileNetV2W100", "MobileNetV3W100Large", "MobileNetV3W100Small",
    "EfficientNetB0", "EfficientNetLiteB0", "EfficientNetV2B0", "EfficientNetV2S", "ConvNeXtAtto",
    "ConvNeXtTiny", "DenseNet121", "VGG16", "VisionTransformerTiny16", "RepVGGA0", "RepVGGB1",
    "InceptionV3", "GhostNetW100", "GhostNetV2W100", "GhostNetV3W100", "RegNetX002", "RegNetY016",
    "HGNetTiny", "HGNetV2B0", "LCNet100", "MobileOneS0", "MobileOneS1", "MobileViTS",
    "InceptionNeXtTiny", "Xception", "ConvMixer736D32", "TinyNetA",
    "HGNetSmall", "HGNetV2B4", "MobileViTV2W050",
]


def build_hub(name):
    import keras_hub
    cls, kw, prov = HUB[name]
    return getattr(keras_hub.models, cls)(**kw), prov, cls


def build_kimm(name):
    import kimm
    return getattr(kimm.models, name)(weights=None), "kimm built-in architecture", name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=["keras_hub", "kimm", "both"], default="both")
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    ns = ap.parse_args(argv)
    import keras
    import numpy as np
    from keras.src.layers.layer import Layer as LayerBase

    jobs = []
    if ns.source in ("keras_hub", "both"):
        import keras_hub
        jobs += [("keras_hub", n, build_hub, keras_hub.__version__) for n in HUB]
    if ns.source in ("kimm", "both"):
        import kimm
        jobs += [("kimm", n, build_kimm, kimm.__version__) for n in KIMM]
    if ns.only:
        want = set(ns.only.split(","))
        jobs = [j for j in jobs if j[1] in want]
    if ns.list:
        print("\n".join(f"{s}:{n}" for s, n, _, _ in jobs))
        return 0
    mans = {}
    failures = 0
    for i, (src, name, builder, version) in enumerate(jobs):
        man = mans.setdefault(src, Manifest(src))
        rels = {"native": f"{src}/{name}.keras", "functional": f"{src}/{name}.functional.keras"}
        if all(man.has(r) for r in rels.values()):
            continue
        t0 = time.time()
        model = None
        try:
            model, prov, cls = builder(name)
            shape = input_hw(model)
            x = np.random.default_rng(0).uniform(0, 1, (1,) + shape).astype("float32")
            with MacCounter(LayerBase) as mc:
                model(x, training=False)
            meta = {
                "source": src.replace("_", "-"), "library": src, "version": version,
                "keras_version": keras.__version__, "architecture": name, "class": cls,
                "config_provenance": prov, "input_shape": list(shape),
                "count_params": int(model.count_params()),
                "ref_macs": int(mc.total), "ref_macs_by_kind": mc.by_kind,
                "ref_macs_method": "wrapped Layer.__call__, eager forward at batch 1 "
                                   "(conv, depthwise, separable, dense, EinsumDense; not attention matmuls)",
                "layer_classes": sorted({type(l).__name__ for l in model.layers}),
            }
            for variant, rel in rels.items():
                path = corpus_dir() / rel
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(path.name.replace(".keras", ".partial.keras"))
                    m = model if variant == "native" else keras.Model(model.inputs, model.outputs,
                                                                      name=f"{name}_functional")
                    m.save(str(tmp))
                    os.replace(tmp, path)
                man.add({"file": rel, "format": "keras", "variant": variant,
                         "bytes": path.stat().st_size, **meta})
            print(f"[{i + 1}/{len(jobs)}] {src}:{name}: {meta['count_params']:,} params, "
                  f"{meta['ref_macs'] / 1e9:.3f} GMACs @ {shape} ({time.time() - t0:.0f}s)", flush=True)
        except Exception as e:  # noqa: BLE001
            failures += 1
            print(f"[{i + 1}/{len(jobs)}] {src}:{name}: FAILED {type(e).__name__}: {e}", flush=True)
            traceback.print_exc()
        finally:
            model = None
            keras.backend.clear_session()
            gc.collect()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
