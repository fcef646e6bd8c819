"""The traffic lab: real protocol implementations between network namespaces, captured with tcpdump.

It writes a labelled capture tree (``<out>/<class>/<class>-<i>.pcap`` plus ``<out>/manifest.json``)
that ``etbert prepare`` reads as folder-per-class. Modules, in the order a run uses them:
plan (seeded workload) -> cleanup (undo registry, signals) -> netns (namespaces, veth, offloads, netem)
-> processes (daemons and clients inside a namespace) -> capture (tcpdump) -> classes (one module per
protocol family) -> manifest -> generate (orchestration) -> cli.
"""
