"""The systems a run may hold, in the order of the report's tables: the whole pipelines (ours,
the seed, Centrifugo behind its Kafka consumer), then the fan-out stage alone (ours published
into Redis as the bridge does, Centrifugo through its publish API). bench/README.md describes each."""

SYSTEMS = ("ours", "seed", "centrifugo", "ours-fanout", "centrifugo-fanout")
# The systems whose own processes the idle scenario measures (the fan-out stages share them).
IDLE_SYSTEMS = ("ours", "seed", "centrifugo")
# The plots' colour of each system.
COLORS = {"ours": "tab:blue", "seed": "tab:red", "centrifugo": "tab:green", "ours-fanout": "tab:cyan",
          "centrifugo-fanout": "tab:olive"}
