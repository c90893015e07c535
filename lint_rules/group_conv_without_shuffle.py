"""CNK107 ``group-conv-without-shuffle``: stacked group convs with no channel shuffle."""
from __future__ import annotations

from typing import Iterable

from keras_cnnkit.analysis.fragments import FragmentBuilder, try_build
from keras_cnnkit.analysis.ir import Graph, Node, OpKind
from keras_cnnkit.analysis.patterns import TRANSPARENT, is_depthwise, is_group_conv
from keras_cnnkit.lint.findings import Finding, Rule, Severity
from lint_rules.common import costed_finding


class GroupConvWithoutShuffle(Rule):
    """Two group convolutions in a row, with no channel shuffle between them.

    ## What it does
    Follows the output of every group convolution (more than one channel per group)
    through batch norm, activations and depthwise convs (which keep channels apart) and
    reports the next group convolution if no channel shuffle (``ChannelShuffle``, or a
    reshape/transpose) comes first.  It proposes a shuffle in front of the second conv.

    ## Why is this bad?
    Each output group of a group conv only sees its own input group.  Stacked without a
    shuffle, group i of the second conv sees only group i of the first: the network
    splits into independent narrow towers, and accuracy drops.  A channel shuffle costs
    no parameters and no FLOPs (only a memory copy) and lets information cross groups.

    ## Example
    ```python
    y = keras.layers.Conv2D(240, 1, groups=3)(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.Conv2D(240, 1, groups=3)(y)
    ```

    ## Use instead
    ```python
    y = keras.layers.Conv2D(240, 1, groups=3)(x)
    y = keras_cnnkit.layers.ChannelShuffle(groups=3)(y)
    y = keras.layers.DepthwiseConv2D(3, padding="same")(y)
    y = keras.layers.Conv2D(240, 1, groups=3)(y)
    ```

    ## References
    - Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network for
      Mobile Devices", CVPR 2018, §3.1 and Figure 1, https://arxiv.org/abs/1707.01083.
    - Ma et al., "ShuffleNet V2", ECCV 2018 (guideline G2: group convs cost memory),
      https://arxiv.org/abs/1807.11164.
    """

    code = "CNK107"
    symbol = "group-conv-without-shuffle"
    severity = Severity.WARNING
    fixable = True

    def check(self, graph: Graph) -> Iterable[Finding]:
        reported = set()
        for node in graph:
            if not is_group_conv(node):
                continue
            for later in _next_group_convs(graph, node):
                if later.name not in reported:
                    reported.add(later.name)
                    finding = self._finding(graph, node, later)
                    if finding is not None:
                        yield finding

    def _finding(self, graph: Graph, first: Node, second: Node):
        groups = first.attrs["groups"]

        def build():
            frag = FragmentBuilder(graph, second.name)
            shuffle = frag.add("shuffle", OpKind.CHANNEL_SHUFFLE, [second.inputs[0]],
                               {"groups": groups, "data_format": second.data_format},
                               "ChannelShuffle")
            frag.copy(second, [shuffle.name])
            return frag

        frag = try_build(build)
        if frag is None:
            return None
        return costed_finding(
            self, graph, second,
            f"group conv ({second.attrs['groups']} groups) follows group conv "
            f"{first.layer or first.name} ({groups} groups) with no channel shuffle: each "
            f"group only sees one group of the previous conv",
            f"insert a ChannelShuffle(groups={groups}) before it", [second.name], frag.nodes,
            frag.nodes[-1].name, measurements={"previous": first.name, "groups": groups})


def _next_group_convs(graph: Graph, node: Node) -> list:
    """Group convs reached from ``node`` through channel-local ops, no shuffle between."""
    out, stack, seen = [], list(graph.consumers(node)), set()
    while stack:
        current = stack.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        if is_group_conv(current):
            out.append(current)
        elif current.op in TRANSPARENT or is_depthwise(current):
            stack.extend(graph.consumers(current))
        # anything else (a shuffle, a standard conv, a merge) ends the path
    return out
