"""The reference playtest world: a small first-person game rendered with Panda3D's software
renderer, with switchable visual bugs and exact per-frame ground truth.

It is the demo's default capture source, the ground truth of every benchmark, and a stand-in
engine for studios trying bugdet before wiring their own. Entry points: :mod:`.session`
(frames in memory), :mod:`.recorder` (capture-session directories), :mod:`.contact_sheet`.
Importing this package does not import Panda3D; its modules do.
"""
