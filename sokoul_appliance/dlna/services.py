"""ContentDirectory:1 and ConnectionManager:1 as async-upnp-client server services.

No ``from __future__ import annotations`` here: ``callable_action`` compares each in-argument's
annotation with its state variable's Python type, so annotations must stay real types.

The SOAP layer (soap.py) sets ``CLIENT`` (who asks) before it calls an action; the actions
raise UpnpActionError with the UPnP code for anything a client got wrong.
"""

import contextvars
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from async_upnp_client.const import ServiceInfo, StateVariableTypeInfo
from async_upnp_client.exceptions import UpnpActionError
from async_upnp_client.server import (
    UpnpServerService,
    callable_action,
    create_event_var,
    create_state_var,
)

from sokoul_appliance.dlna import didl
from sokoul_appliance.dlna.content import ROOT, Client, ContentTree, NoSuchObject, Page
from sokoul_appliance.dlna.metrics import DlnaMetrics
from sokoul_appliance.dlna.search import SearchCriteriaError
from sokoul_appliance.dlna.sort import SORT_CAPABILITIES, parse_sort

CLIENT: contextvars.ContextVar[Client] = contextvars.ContextVar("dlna_client")

CDS_TYPE = "urn:schemas-upnp-org:service:ContentDirectory:1"
CMS_TYPE = "urn:schemas-upnp-org:service:ConnectionManager:1"
NO_SUCH_OBJECT = 701
INVALID_SEARCH = 708
NO_SUCH_CONTAINER = 710
CANNOT_PROCESS = 720
INVALID_CONNECTION = 706
SEARCH_CAPABILITIES = "upnp:class,dc:title,dc:date,@id,res@size,res@duration,res@protocolInfo"
FEATURE_LIST = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Features xmlns="urn:schemas-upnp-org:av:avs" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
    'xsi:schemaLocation="urn:schemas-upnp-org:av:avs '
    'http://www.upnp.org/schemas/av/avs.xsd">'
    '<Feature name="samsung.com_BASICVIEW" version="1">'
    f'<container id="{ROOT}" type="object.item.videoItem"/>'
    "</Feature></Features>"
)


def upnp_error(code: int, description: str) -> UpnpActionError:
    return UpnpActionError(error_code=code, error_desc=description)


class ContentDirectoryService(UpnpServerService):
    SERVICE_DEFINITION = ServiceInfo(
        service_id="urn:upnp-org:serviceId:ContentDirectory",
        service_type=CDS_TYPE,
        control_url="/upnp/control/ContentDirectory",
        event_sub_url="/upnp/event/ContentDirectory",
        scpd_url="/ContentDirectory.xml",
        xml=ET.Element("server_service"),
    )
    STATE_VARIABLE_DEFINITIONS: Mapping[str, StateVariableTypeInfo] = {
        "SearchCapabilities": create_state_var("string"),
        "SortCapabilities": create_state_var("string"),
        "SystemUpdateID": create_event_var("ui4", default="0", max_rate=2.0),
        "A_ARG_TYPE_ObjectID": create_state_var("string"),
        "A_ARG_TYPE_Result": create_state_var("string"),
        "A_ARG_TYPE_SearchCriteria": create_state_var("string"),
        "A_ARG_TYPE_BrowseFlag": create_state_var(
            "string", allowed=["BrowseMetadata", "BrowseDirectChildren"]
        ),
        "A_ARG_TYPE_Filter": create_state_var("string"),
        "A_ARG_TYPE_SortCriteria": create_state_var("string"),
        "A_ARG_TYPE_Index": create_state_var("ui4"),
        "A_ARG_TYPE_Count": create_state_var("ui4"),
        "A_ARG_TYPE_UpdateID": create_state_var("ui4"),
        "A_ARG_TYPE_Featurelist": create_state_var("string"),
        "A_ARG_TYPE_CategoryType": create_state_var("string"),  # ignored (any value)
        "A_ARG_TYPE_RID": create_state_var("string"),  # ignored (any value)
        "A_ARG_TYPE_PosSec": create_state_var("ui4"),
    }

    tree: ContentTree
    metrics: DlnaMetrics

    def bind(self, tree: ContentTree, metrics: DlnaMetrics) -> None:
        self.tree = tree
        self.metrics = metrics

    def set_update_id(self, value: int) -> None:
        self.state_variable("SystemUpdateID").value = value

    @property
    def update_id(self) -> int:
        return int(self.state_variable("SystemUpdateID").value or 0)

    @callable_action(
        name="Browse",
        in_args={
            "ObjectID": "A_ARG_TYPE_ObjectID",
            "BrowseFlag": "A_ARG_TYPE_BrowseFlag",
            "Filter": "A_ARG_TYPE_Filter",
            "StartingIndex": "A_ARG_TYPE_Index",
            "RequestedCount": "A_ARG_TYPE_Count",
            "SortCriteria": "A_ARG_TYPE_SortCriteria",
        },
        out_args={
            "Result": "A_ARG_TYPE_Result",
            "NumberReturned": "A_ARG_TYPE_Count",
            "TotalMatches": "A_ARG_TYPE_Count",
            "UpdateID": "A_ARG_TYPE_UpdateID",
        },
    )
    async def browse(
        self,
        ObjectID: str,
        BrowseFlag: str,
        Filter: str,
        StartingIndex: int,
        RequestedCount: int,
        SortCriteria: str,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        client = CLIENT.get()
        flt = didl.Filter.parse(Filter)
        try:
            if BrowseFlag == "BrowseMetadata":
                if StartingIndex != 0:
                    raise upnp_error(402, "StartingIndex must be 0 for BrowseMetadata")
                page = await self.tree.metadata(ObjectID, client, flt)
            else:
                page = await self.tree.children(
                    ObjectID, StartingIndex, RequestedCount, client, flt, parse_sort(SortCriteria)
                )
        except NoSuchObject:
            raise upnp_error(NO_SUCH_OBJECT, "No such object") from None
        self.metrics.browse.labels(action="Browse").observe(time.perf_counter() - started)
        return self._answer(page)

    def _answer(self, page: Page) -> dict[str, Any]:
        return {
            "Result": page.result,
            "NumberReturned": page.returned,
            "TotalMatches": page.total,
            "UpdateID": self.update_id,
        }

    @callable_action(
        name="Search",
        in_args={
            "ContainerID": "A_ARG_TYPE_ObjectID",
            "SearchCriteria": "A_ARG_TYPE_SearchCriteria",
            "Filter": "A_ARG_TYPE_Filter",
            "StartingIndex": "A_ARG_TYPE_Index",
            "RequestedCount": "A_ARG_TYPE_Count",
            "SortCriteria": "A_ARG_TYPE_SortCriteria",
        },
        out_args={
            "Result": "A_ARG_TYPE_Result",
            "NumberReturned": "A_ARG_TYPE_Count",
            "TotalMatches": "A_ARG_TYPE_Count",
            "UpdateID": "A_ARG_TYPE_UpdateID",
        },
    )
    async def search(
        self,
        ContainerID: str,
        SearchCriteria: str,
        Filter: str,
        StartingIndex: int,
        RequestedCount: int,
        SortCriteria: str,
    ) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            page = await self.tree.search(
                ContainerID,
                SearchCriteria,
                StartingIndex,
                RequestedCount,
                CLIENT.get(),
                didl.Filter.parse(Filter),
                parse_sort(SortCriteria),
            )
        except SearchCriteriaError as e:
            raise upnp_error(INVALID_SEARCH, f"Unsupported or invalid search criteria: {e}") \
                from None  # fmt: skip
        except NoSuchObject:
            raise upnp_error(NO_SUCH_CONTAINER, "No such container") from None
        self.metrics.browse.labels(action="Search").observe(time.perf_counter() - started)
        return self._answer(page)

    @callable_action(
        name="GetSearchCapabilities",
        in_args={},
        out_args={"SearchCaps": "SearchCapabilities"},
    )
    async def get_search_capabilities(self) -> dict[str, Any]:
        return {"SearchCaps": SEARCH_CAPABILITIES}

    @callable_action(
        name="GetSortCapabilities",
        in_args={},
        out_args={"SortCaps": "SortCapabilities"},
    )
    async def get_sort_capabilities(self) -> dict[str, Any]:
        # exactly what SortCriteria can order by (sort.py); other properties are ignored
        return {"SortCaps": SORT_CAPABILITIES}

    @callable_action(
        name="GetSystemUpdateID",
        in_args={},
        out_args={"Id": "SystemUpdateID"},
    )
    async def get_system_update_id(self) -> dict[str, Any]:
        return {"Id": self.update_id}

    @callable_action(
        name="X_GetFeatureList",
        in_args={},
        out_args={"FeatureList": "A_ARG_TYPE_Featurelist"},
    )
    async def x_get_feature_list(self) -> dict[str, Any]:
        return {"FeatureList": FEATURE_LIST}

    @callable_action(
        name="X_SetBookmark",
        in_args={
            "CategoryType": "A_ARG_TYPE_CategoryType",
            "RID": "A_ARG_TYPE_RID",
            "ObjectID": "A_ARG_TYPE_ObjectID",
            "PosSecond": "A_ARG_TYPE_PosSec",
        },
        out_args={},
    )
    async def x_set_bookmark(
        self, CategoryType: str, RID: str, ObjectID: str, PosSecond: int
    ) -> dict[str, Any]:
        """Samsung TVs say where playback stopped; Browse then carries it in sec:dcmInfo
        (BM=) and the TV offers to resume there. 0 clears it."""
        if not await self.tree.set_bookmark(ObjectID, PosSecond):
            raise upnp_error(NO_SUCH_OBJECT, "No such object")
        return {}


class ConnectionManagerService(UpnpServerService):
    SERVICE_DEFINITION = ServiceInfo(
        service_id="urn:upnp-org:serviceId:ConnectionManager",
        service_type=CMS_TYPE,
        control_url="/upnp/control/ConnectionManager",
        event_sub_url="/upnp/event/ConnectionManager",
        scpd_url="/ConnectionManager.xml",
        xml=ET.Element("server_service"),
    )
    STATE_VARIABLE_DEFINITIONS: Mapping[str, StateVariableTypeInfo] = {
        "SourceProtocolInfo": create_event_var("string", default=""),
        "SinkProtocolInfo": create_event_var("string", default=""),
        "CurrentConnectionIDs": create_event_var("string", default="0"),
        "A_ARG_TYPE_ConnectionStatus": create_state_var(
            "string",
            allowed=[
                "OK",
                "ContentFormatMismatch",
                "InsufficientBandwidth",
                "UnreliableChannel",
                "Unknown",
            ],
        ),  # fmt: skip
        "A_ARG_TYPE_ConnectionManager": create_state_var("string"),
        "A_ARG_TYPE_Direction": create_state_var("string", allowed=["Input", "Output"]),
        "A_ARG_TYPE_ProtocolInfo": create_state_var("string"),
        "A_ARG_TYPE_ConnectionID": create_state_var("i4"),
        "A_ARG_TYPE_AVTransportID": create_state_var("i4"),
        "A_ARG_TYPE_RcsID": create_state_var("i4"),
    }

    def set_source_protocols(self, protocols: str) -> None:
        self.state_variable("SourceProtocolInfo").value = protocols

    @callable_action(
        name="GetProtocolInfo",
        in_args={},
        out_args={"Source": "SourceProtocolInfo", "Sink": "SinkProtocolInfo"},
    )
    async def get_protocol_info(self) -> dict[str, Any]:
        return {
            "Source": self.state_variable("SourceProtocolInfo").value or "",
            "Sink": "",
        }

    @callable_action(
        name="GetCurrentConnectionIDs",
        in_args={},
        out_args={"ConnectionIDs": "CurrentConnectionIDs"},
    )
    async def get_current_connection_ids(self) -> dict[str, Any]:
        return {"ConnectionIDs": "0"}

    @callable_action(
        name="GetCurrentConnectionInfo",
        in_args={"ConnectionID": "A_ARG_TYPE_ConnectionID"},
        out_args={
            "RcsID": "A_ARG_TYPE_RcsID",
            "AVTransportID": "A_ARG_TYPE_AVTransportID",
            "ProtocolInfo": "A_ARG_TYPE_ProtocolInfo",
            "PeerConnectionManager": "A_ARG_TYPE_ConnectionManager",
            "PeerConnectionID": "A_ARG_TYPE_ConnectionID",
            "Direction": "A_ARG_TYPE_Direction",
            "Status": "A_ARG_TYPE_ConnectionStatus",
        },
    )
    async def get_current_connection_info(self, ConnectionID: int) -> dict[str, Any]:
        if ConnectionID != 0:
            raise upnp_error(INVALID_CONNECTION, "Invalid connection reference")
        return {
            "RcsID": -1,
            "AVTransportID": -1,
            "ProtocolInfo": "",
            "PeerConnectionManager": "",
            "PeerConnectionID": -1,
            "Direction": "Output",
            "Status": "OK",
        }
