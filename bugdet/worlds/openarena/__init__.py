"""OpenArena as a capture source: the real ioquake3 engine, bots, and injected engine bugs.

A session is made in three steps (:mod:`.capture`): bots play a map while the game records a
demo from a spectator following one of them (first-person view, weapon drawn); the demo is then
replayed several times at a fixed frame rate, once clean and once per bug type with that bug
switched on in the engine (:mod:`.bugs`: cvars such as ``r_picmip`` and ``r_znear``, or a pk3 of
shader overrides, :mod:`.assets`); every replay renders the same moments, so the per-pixel
difference between a bug replay and the clean one is the exact ground truth. Nothing here imports
the game: :mod:`.engine` runs it headless under ``xvfb-run`` as a bounded subprocess.
"""
