"""A lab run: plan, build the namespaces, then per class start servers, capture, drive flows, stop.

Classes run one after another, each with its own tcpdump, so a capture holds exactly one class.
The manifest is rewritten after every class: an interrupted run leaves the finished classes usable
and removes the half-written one.
"""

from __future__ import annotations

import os
import platform
import shutil
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
from etbert.lab.manifest import MANIFEST_NAME, ClassRecord, FlowOutcome, Manifest
from etbert.lab.netns import LabSetupError, Topology, create_topology, host_unavailable, netem_unavailable
from etbert.lab.plan import FlowPlan, LabPlan, make_plan
from etbert.lab.processes import FlowError

ProgressCallback = Callable[[str, int, int], None]  # class name, flows done, flows planned
SETTLE_S = 0.3  # lets the last FIN/ACK exchanges reach tcpdump before it stops


@dataclass(frozen=True)
class GenerateOptions:
    out_dir: Path
    classes: tuple[str, ...]
    flows_per_class: int = 40
    seed: int = 0
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


def run_flows(lab_class: LabClass, lab: LabContext, parallel: int, on_progress: ProgressCallback) -> list[FlowOutcome]:
    def one(flow: FlowPlan) -> FlowOutcome:
        try:
            lab_class.run_flow(lab, flow)
        except FlowError as error:
            return FlowOutcome(flow.index, flow.params, str(error))
        return FlowOutcome(flow.index, flow.params)

    outcomes = []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, lab_class.max_parallel))) as pool:
        futures = [pool.submit(one, flow) for flow in lab.flows]
        try:
            for future in as_completed(futures):
                outcomes.append(future.result())
                on_progress(lab_class.name, len(outcomes), len(futures))
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # running clients die with the namespaces
            raise
    return sorted(outcomes, key=lambda outcome: outcome.index)


def generate_class(
    lab_class: LabClass, topology: Topology, flows: list[FlowPlan], scratch: Path, out_dir: Path, parallel: int, on_progress: ProgressCallback
) -> ClassRecord:
    started = time.monotonic()
    class_dir = out_dir / lab_class.name
    capture_path, keylog = class_dir / f"{lab_class.name}.pcap", class_dir / f"{lab_class.name}.keylog"
    workdir = scratch / lab_class.name
    workdir.mkdir()
    class_dir.mkdir()
    with Cleanup() as unfinished:
        unfinished.push(f"remove unfinished {class_dir}", lambda: shutil.rmtree(class_dir, ignore_errors=True))
        with Cleanup() as scope:
            lab = LabContext(topology=topology, workdir=workdir, keylog=keylog, cleanup=scope, flows=flows)
            lab_class.start(lab)
            capture = start_capture(scope, topology.client_ns, topology.device, capture_path, workdir)
            outcomes = run_flows(lab_class, lab, parallel, on_progress)
            time.sleep(SETTLE_S)
            dropped = stop_capture(capture)
        unfinished.steps.clear()  # the class is complete: keep its folder
    summary = summarise(capture_path, dropped)
    return ClassRecord(
        name=lab_class.name,
        description=lab_class.description,
        capture=str(capture_path.relative_to(out_dir)),
        keylog=str(keylog.relative_to(out_dir)) if keylog.exists() else None,
        software=lab_class.software(),
        flows_planned=len(flows),
        flows_failed=sum(outcome.error is not None for outcome in outcomes),
        packets=summary.packets,
        bytes=summary.bytes,
        connections=summary.flows,
        max_ip_length=summary.max_ip_length,
        dropped=summary.dropped,
        seconds=round(time.monotonic() - started, 2),
        flows=outcomes,
    )


def plan_run(options: GenerateOptions) -> tuple[list[LabClass], LabPlan]:
    classes = select_classes(options.classes)
    plan = make_plan({c.name: c.sample for c in classes}, options.flows_per_class, options.seed, options.size_scale)
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
            record = generate_class(lab_class, topology, plan.flows[lab_class.name], scratch, options.out_dir, options.parallel, on_progress)
            manifest.classes.append(record)
            manifest.write(options.out_dir)
    manifest.write(options.out_dir)
    return manifest
