"""Training one run: the loop (`trainer`), what it builds first (`setup`), its checkpoints and the one
resume check (`checkpoint`), the other ranks as one object (`distributed.World`), the run directory's
lock (`lock`), what watches it (`hooks`), the LR schedule (`lr`), test evaluation (`evaluate`), forward
work per unit (`flops`) and SIGTERM (`signals`)."""
