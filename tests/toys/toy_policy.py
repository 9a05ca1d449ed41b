"""A toy cut policy: cut one more unit at the end of every epoch, keeping a count of its decisions."""
from fastdrop.policies import CutPolicy, Decision, register_policy


@register_policy
class OneMoreEachEpoch(CutPolicy):
    name = "toy_policy"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.decisions = 0

    def decide(self, obs):
        self.decisions += 1
        if len(obs.p) < 2:  # never the last conv unit
            return Decision(obs.n_cut, "keep", "toy: only the last conv unit is left")
        return Decision(obs.n_cut + 1, "cut", f"toy: cut {obs.names[0]}")

    def state_dict(self):
        return {"decisions": self.decisions}

    def load_state_dict(self, sd):
        self.decisions = sd["decisions"]
