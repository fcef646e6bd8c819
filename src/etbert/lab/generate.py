"""A lab run: plan, build the namespaces, then per class start servers, capture its flows, stop.

Classes run one after another, so a capture holds exactly one class. A class's flows are captured in
several tcpdump sessions, one file per contiguous share of its plan, while its servers stay up: like the
several recordings per class of public datasets, they let `etbert prepare --split capture` put every
class in train, val and test. The manifest is rewritten after every class: an interrupted run leaves
the finished classes usable and removes the half-written one (all its captures).
"""

from __future__ import annotations

import os
import platform
import shutil
import itertools
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

from etbert.lab.capture import start_capture, stop_capture, summarise
from etbert.lab.classes import ALL_CLASSES, LabClass, LabContext
from etbert.lab.cleanup import Cleanup, signals_raise
from etbert.lab.manifest import MANIFEST_NAME, CaptureRecord, ClassRecord, FlowOutcome, Manifest
from etbert.lab.netns import LabSetupError, Topology, create_topology, host_unavailable, netem_unavailable
from etbert.lab.plan import DEFAULT_CAPTURES_PER_CLASS, FlowPlan, LabPlan, make_plan
from etbert.lab.processes import FlowError, wait_connections_closed

ProgressCallback = Callable[[str, int, int], None]  # class name, flows done, flows planned
SETTLE_S = 0.3  # lets the last packets (UDP ones too) reach tcpdump before it stops


@dataclass(frozen=True)
class GenerateOptions:
    out_dir: Path
    classes: tuple[str, ...]
    flows_per_class: int = 40
    seed: int = 0
    captures_per_class: int = DEFAULT_CAPTURES_PER_CLASS  # tcpdump sessions per class (at most one per flow)
    size_scale: float = 1.0
    netem: str | None = None
    parallel: int = 8
    force: bool = False  # replace an earlier lab output in out_dir


def select_classes(names: Iterable[str]) -> list[LabClass]:
    unknown = [name for name in names if name not in ALL_CLASSES]
    if unknown:
        raise ValueError(f"unknown class(es) {', '.join(unknown)}; known: {', '.join(ALL_CLASSES)}")
    return [ALL_CLASSES[name] for name in names]


def availability() -> dict[str, str | None]:
    """Every known class with the reason it cannot run here (None when it can)."""
    host = host_unavailable()
    return {name: host or lab_class.unavailable() for name, lab_class in ALL_CLASSES.items()}


def prepare_output(out_dir: Path, force: bool) -> None:
    """Refuse to mix runs: out_dir must be empty, or (with force) hold an earlier lab output to replace."""
    if out_dir.exists() and any(out_dir.iterdir()):
        if not force:
            raise LabSetupError(f"{out_dir} is not empty (use --force to replace an earlier lab output there)")
        if not (out_dir / MANIFEST_NAME).exists():
            raise LabSetupError(f"{out_dir} holds no lab manifest: refusing to delete it, choose an empty folder")
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)


def host_description() -> dict[str, str]:
    tcpdump = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {"kernel": platform.release(), "python": platform.python_version(), "tcpdump": tcpdump[0] if tcpdump else "unknown"}


def run_flows(lab_class: LabClass, lab: LabContext, flows: list[FlowPlan], parallel: int, flow_done: Callable[[], None]) -> list[FlowOutcome]:
    def one(flow: FlowPlan) -> FlowOutcome:
        try:
            lab_class.run_flow(lab, flow)
        except FlowError as error:
            return FlowOutcome(flow.index, flow.params, str(error))
        return FlowOutcome(flow.index, flow.params)

    outcomes = []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, lab_class.max_parallel))) as pool:
        futures = [pool.submit(one, flow) for flow in flows]
        try:
            for future in as_completed(futures):
                outcomes.append(future.result())
                flow_done()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # running clients die with the namespaces
            raise
    return sorted(outcomes, key=lambda outcome: outcome.index)


def capture_share(
    lab_class: LabClass, lab: LabContext, share: list[FlowPlan], path: Path, parallel: int, flow_done: Callable[[], None]
) -> tuple[list[FlowOutcome], int]:
    """One tcpdump session around one share of a class's flows; returns their outcomes and the kernel's drops."""
    with Cleanup() as session:
        capture = start_capture(session, lab.topology.client_ns, lab.topology.device, path, lab.workdir)
        outcomes = run_flows(lab_class, lab, share, parallel, flow_done)
        wait_connections_closed(lab.topology.client_ns, lab.server)  # every FIN/ACK in this file, none in the next
        time.sleep(SETTLE_S)
        return outcomes, stop_capture(capture)


def capture_record(path: Path, out_dir: Path, share: list[FlowPlan], dropped: int) -> CaptureRecord:
    summary = summarise(path, dropped)
    return CaptureRecord(
        path=str(path.relative_to(out_dir)),
        first_flow=share[0].index,
        flows=len(share),
        packets=summary.packets,
        bytes=summary.bytes,
        connections=summary.flows,
        max_ip_length=summary.max_ip_length,
        dropped=summary.dropped,
    )


def generate_class(
    lab_class: LabClass, topology: Topology, shares: list[list[FlowPlan]], scratch: Path, out_dir: Path, parallel: int, on_progress: ProgressCallback
) -> ClassRecord:
    """Start the class's servers once, then capture each share of its flows in a file of its own."""
    started = time.monotonic()
    class_dir = out_dir / lab_class.name
    keylog = class_dir / f"{lab_class.name}.keylog"
    workdir = scratch / lab_class.name
    workdir.mkdir()
    class_dir.mkdir()
    planned = sum(len(share) for share in shares)
    done = itertools.count(1)

    def flow_done() -> None:
        on_progress(lab_class.name, next(done), planned)

    outcomes, captures = [], []
    with Cleanup() as unfinished:
        unfinished.push(f"remove unfinished {class_dir}", lambda: shutil.rmtree(class_dir, ignore_errors=True))
        with Cleanup() as scope:
            lab = LabContext(topology=topology, workdir=workdir, keylog=keylog, cleanup=scope)
            lab_class.start(lab)
            for number, share in enumerate(shares, start=1):
                path = class_dir / f"{lab_class.name}-{number}.pcap"
                share_outcomes, dropped = capture_share(lab_class, lab, share, path, parallel, flow_done)
                outcomes += share_outcomes
                captures.append(capture_record(path, out_dir, share, dropped))
        unfinished.steps.clear()  # the class is complete: keep its folder
    return ClassRecord(
        name=lab_class.name,
        description=lab_class.description,
        keylog=str(keylog.relative_to(out_dir)) if keylog.exists() else None,
        software=lab_class.software(),
        flows_planned=planned,
        flows_failed=sum(outcome.error is not None for outcome in outcomes),
        seconds=round(time.monotonic() - started, 2),
        captures=captures,
        flows=outcomes,
    )


def plan_run(options: GenerateOptions) -> tuple[list[LabClass], LabPlan]:
    classes = select_classes(options.classes)
    samplers = {c.name: c.sample for c in classes}
    plan = make_plan(samplers, options.flows_per_class, options.seed, options.size_scale, options.captures_per_class)
    return classes, plan


def generate(options: GenerateOptions, on_progress: ProgressCallback = lambda *_: None) -> Manifest:
    """Generate every requested class that can run here; the ones that cannot are listed in the manifest."""
    reason = host_unavailable()
    if reason:
        raise LabSetupError(reason)
    classes, plan = plan_run(options)
    manifest = Manifest(
        seed=options.seed,
        flows_per_class=options.flows_per_class,
        captures_per_class=options.captures_per_class,
        size_scale=options.size_scale,
        netem=options.netem,
        addresses=asdict(plan.addresses),
        host=host_description(),
    )
    runnable = []
    for lab_class in classes:
        why = lab_class.unavailable()
        if why:
            manifest.unavailable[lab_class.name] = why
        else:
            runnable.append(lab_class)
    prepare_output(options.out_dir, options.force)
    run_id = str(os.getpid())
    with signals_raise(), Cleanup() as run:
        scratch = Path(tempfile.mkdtemp(prefix="etbert-lab-"))
        run.push(f"remove {scratch}", lambda: shutil.rmtree(scratch, ignore_errors=True))
        if options.netem:
            why = netem_unavailable(run, run_id)
            if why:
                raise LabSetupError(f"--netem: {why}")
        topology = create_topology(run, run_id, plan.addresses, options.netem)
        for lab_class in runnable:
            record = generate_class(lab_class, topology, plan.capture_shares(lab_class.name), scratch, options.out_dir, options.parallel, on_progress)
            manifest.classes.append(record)
            manifest.write(options.out_dir)
    manifest.write(options.out_dir)
    return manifest
