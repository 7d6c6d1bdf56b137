"""The device app: the relay assembled from settings, its ledger, metrics, server and CLI.

``runtime`` builds the relay (SLM, policy, guarded cloud) from ``settings``;
``cloud_stack`` assembles the guarded cloud client and ``cloud_check`` is
``relay cloud check``; ``ledger`` keeps the device's cloud spend; ``calibration`` fits entropy
thresholds; ``metrics`` and ``server`` (with its page, ``show``) serve it;
``cloud_process`` starts a local relay-cloud; ``cli/`` is the ``relay`` command.
"""

from protocol.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(
    __name__,
    {
        "edge.app.runtime": ["Relay", "build_relay"],
        "edge.app.settings": ["EdgeSettings"],
    },
)
