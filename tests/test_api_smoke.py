from __future__ import annotations

from tests.helpers import community, follow, join, post, register


async def test_register_follow_and_read_profile(api, operator_token):
    alice = await register(api, operator_token, "Alice", phone="13812345678", city="上海")
    bob = await register(api, operator_token, "Bob")
    c = await community(api, operator_token, "跑步")
    await join(api, operator_token, c, alice["id"])
    assert (await follow(api, operator_token, bob["id"], alice["id"]))["changed"] is True
    assert (await follow(api, operator_token, bob["id"], alice["id"]))["changed"] is False
    created = await post(api, operator_token, alice["id"], c, "hello")
    assert created["__typename"] == "ContentPayload", created

    data = await api.ok(
        """query($id: ID!) { member(id: $id) { displayName phone city
             communities { totalCount edges { role node { name } } }
             followers(first: 5) { totalCount nodes { displayName } }
             following { totalCount }
             posts { totalCount nodes { title community { name } author { displayName } } } } }""",
        {"id": alice["id"]},
        token=operator_token,
    )
    m = data["member"]
    assert m["displayName"] == "Alice"
    assert m["phone"] == "138****5678"
    assert m["communities"] == {"totalCount": 1, "edges": [{"role": "MEMBER", "node": {"name": "跑步"}}]}
    assert m["followers"] == {"totalCount": 1, "nodes": [{"displayName": "Bob"}]}
    assert m["following"] == {"totalCount": 0}
    assert m["posts"] == {"totalCount": 1, "nodes": [{"title": "hello", "community": {"name": "跑步"}, "author": {"displayName": "Alice"}}]}
