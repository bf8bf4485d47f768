"""The evaluation phase: ``nasframe train`` trains a found architecture from scratch or fine-tunes it.

After a search (:mod:`nasframe.search`) the chosen arch is trained standalone with a space's standard protocol
(``configs/protocol/``): NAS-Bench-201's own training, DARTS's evaluation network (Liu et al., ICLR 2019),
NAS-Bench-Graph's training (Qin et al., NeurIPS 2022 D&B), or fine-tuning an elastic MobileNet subnet from its
inherited weights (Once-for-All, Cai et al., ICLR 2020). The supernet trainer does the loop
(:class:`~nasframe.training.trainer.SupernetTrainer`); a fixed network is one more training method
(:class:`~nasframe.evaluation_phase.method.FixedNetworkMethod`).
"""
