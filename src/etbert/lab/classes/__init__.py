"""The traffic classes the lab knows, by name, in the order a run generates them."""

from __future__ import annotations

from etbert.lab.classes.base import LabClass, LabContext
from etbert.lab.classes.background import Background
from etbert.lab.classes.quic import Quic
from etbert.lab.classes.proxies import Shadowsocks, V2Ray
from etbert.lab.classes.ssh import Ssh
from etbert.lab.classes.tunnels import OpenVpn, WireGuard
from etbert.lab.classes.web import TlsApi, TlsDownload, TlsPage, TlsStream, TlsUpload

ALL_CLASSES: dict[str, LabClass] = {
    lab_class.name: lab_class()
    for lab_class in (TlsApi, TlsPage, TlsDownload, TlsUpload, TlsStream, Ssh, Shadowsocks, V2Ray, Quic, WireGuard, OpenVpn, Background)
}

__all__ = ["ALL_CLASSES", "LabClass", "LabContext"]
