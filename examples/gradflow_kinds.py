"""Gradient flow through time: how much of the last step's gradient reaches t steps back, per kind.

Run:   python examples/gradflow_kinds.py            (the plot: lmprof gradflow --models LSTM GRU RNN_TANH RNN_RELU)
Predict first: which of LSTM, GRU, RNN_TANH and RNN_RELU keeps the gradient longest?
Try:   nhid 256 instead of 64; or a trained model: lmprof gradflow --from RUN
"""

from __future__ import annotations

from lmprof.config import RunConfig
from lmprof.experiments.gradient_flow import decay_factor, gradient_flow, steps_until

KINDS = ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"]


def main(nhid: int = 64, bptt: int = 25) -> None:
    # The same seed and the same batches of the embedded corpus for every kind; weights as initialised.
    cfg = RunConfig(emsize=nhid, nhid=nhid, nlayers=1, bptt=bptt, dropout=0.0)
    flow = gradient_flow(cfg, kinds=KINDS, batches=5)
    print(f"|dLoss_T/d state_t| at initialisation, nhid {nhid}, bptt {bptt}, mean of {flow.batches} batches")
    print(f"{'kind':<9} state  decay/step  steps back until 1% of the last step's gradient")
    for kind, states in flow.curves.items():
        for state, (norms,) in states.items():
            reach = steps_until(norms)
            said = f"{reach}" if reach is not None else f"more than {bptt - 1}"
            print(f"{kind:<9} {state:<5}  {decay_factor(norms):10.3f}  {said}")
    print("decay/step: (|g at t=1| / |g at t=T|) ** (1 / (T-1)); below 1 the gradient vanishes going back.")


if __name__ == "__main__":
    main()
