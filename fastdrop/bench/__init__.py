"""`fastdrop bench` and `fastdrop suite`: speed-ups measured so that machine drift cannot explain them.
`run` trains the variants (interleaved repeats, equal-time sgd), `analysis` does the arithmetic on their
rows, `scoring` and `reference` measure the price of scoring and the hand-written SGD floor, `render`
writes the report; `suite` is the held-out suite over five configs."""
