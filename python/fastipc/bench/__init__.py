"""``fastipc bench``: every mechanism side by side, with the alternatives and the machine's limit.

Nothing is imported here, so that ``fastipc.bench.affinity`` (or any one module) can be used
without loading the whole benchmark. The layout, imports only going down:

- :mod:`.affinity`: CPU pinning (the only caller of ``os.sched_setaffinity``).
- :mod:`.base`: the mechanism interface and the registry that mechanisms add themselves to.
- :mod:`.framing`: echo and client sides and listener bases shared by several mechanisms
  (framed connections, length-prefixed stdlib sockets); nothing registered.
- One module per family of mechanisms, importing only the three above and fastipc:
  :mod:`.sockets`, :mod:`.fdpass`, :mod:`.alternatives`, :mod:`.classic`, :mod:`.shm`,
  :mod:`.cpeer` (with ``cpeer.c``, the C reference peer).
- :mod:`.mechanisms`: the explicit list of those modules; importing it registers them all.
- :mod:`.timing`: the timing plan, the timed loops and the statistics.
- :mod:`.peer`: the benchmark's child processes (``python -m fastipc.bench.peer``).
- :mod:`.processes`: starting, watching and killing those children, from the parent.
- :mod:`.results`: the options of a run, its cells and report, as JSON.
- :mod:`.runner`: the run itself.
- :mod:`.report`: the tables and the JSON file; :mod:`.plot`: the PNG (matplotlib).
"""
