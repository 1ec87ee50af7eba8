"""A deterministic, realistic synthetic community (演示数据) and its bulk loader.

:func:`generate` builds a whole brand community from ``(tenant, members, seed, now)``
without touching the graph: members who joined over 18 months through WeChat, mini
programs, livestreams and invitations (裂变 campaigns), interest and city communities with
owners, admins and KOLs, a power-law follow graph, a referral forest, 90 days of posts
with likes, comments, favorites and shares, a product catalogue and purchases. The same
arguments always give the same rows.

The data is held column-wise in numpy arrays, so a million members fit in a few hundred
megabytes; graph rows (plain dicts) are only built one batch at a time while loading.
Every generator is linear (or ``n log n``): preferential attachment samples from
cumulative weights, co-membership picks go through CSR offsets, duplicates are removed
with ``np.unique`` on packed integer keys.

:func:`load_demo` writes the rows with ``UNWIND $rows`` batches, nodes first and then
relationships, each batch in its own managed write transaction, and reports progress per
batch. :func:`has_members` tells whether a tenant already holds members.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, LiteralString

import numpy as np
import numpy.typing as npt

from graph.client import GraphClient, Tx, from_micros, to_micros
from graph.cypher import cypher

__all__ = [
    "CONTENT_WINDOW_DAYS",
    "HISTORY_DAYS",
    "MAX_REFERRAL_DEPTH",
    "DemoData",
    "DemoSummary",
    "Stage",
    "generate",
    "has_members",
    "load_demo",
    "load_generated",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Row = dict[str, Any]

# --------------------------------------------------------------------------------------
# Statements (constant text, parameters only). Every batch statement returns the number of
# rows it wrote, so the summary reports what the server actually created.
# --------------------------------------------------------------------------------------

MERGE_TENANT = cypher(
    """
    MERGE (t:Tenant {id: $tenant})
    ON CREATE SET t.tenantId = $tenant, t.name = $name, t.createdAt = $createdAt
    RETURN count(t) AS n
    """
)
HAS_MEMBERS = cypher(
    """
    MATCH (m:Member {tenantId: $tenant})
    RETURN m.id AS id
    LIMIT 1
    """
)

CREATE_MEMBERS = cypher(
    """
    UNWIND $rows AS row
    CREATE (n:Member)
    SET n = row
    RETURN count(n) AS n
    """
)
CREATE_COMMUNITIES = cypher(
    """
    UNWIND $rows AS row
    CREATE (n:Community)
    SET n = row
    RETURN count(n) AS n
    """
)
CREATE_TAGS = cypher(
    """
    UNWIND $rows AS row
    CREATE (n:Tag)
    SET n = row
    RETURN count(n) AS n
    """
)
CREATE_PRODUCTS = cypher(
    """
    UNWIND $rows AS row
    CREATE (n:Product)
    SET n = row
    RETURN count(n) AS n
    """
)
CREATE_CONTENTS = cypher(
    """
    UNWIND $rows AS row
    CREATE (n:Content)
    SET n = row
    RETURN count(n) AS n
    """
)
CREATE_COMMENTS = cypher(
    """
    UNWIND $rows AS row
    CREATE (n:Comment)
    SET n = row
    RETURN count(n) AS n
    """
)
CREATE_PURCHASES = cypher(
    """
    UNWIND $rows AS row
    CREATE (n:Purchase)
    SET n = row
    RETURN count(n) AS n
    """
)

CREATE_REFERRALS = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Member {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:REFERRED {at: row.at, code: row.code, channel: row.channel}]->(b)
    SET r.campaignId = row.campaignId
    RETURN count(r) AS n
    """
)
CREATE_FOLLOWS = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Member {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:FOLLOWS {at: row.at}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_MEMBERSHIPS = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Community {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:MEMBER_OF {role: row.role, joinedAt: row.joinedAt}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_INTERESTS = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Tag {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:INTERESTED_IN {weight: row.weight, source: row.source}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_POSTED = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Content {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:POSTED {at: row.at}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_CONTENT_IN = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Content {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Community {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:IN]->(b)
    RETURN count(r) AS n
    """
)
CREATE_ABOUT = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Content {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Tag {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:ABOUT]->(b)
    RETURN count(r) AS n
    """
)
CREATE_LIKES = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Content {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:LIKED {at: row.at}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_FAVORITES = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Content {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:FAVORITED {at: row.at}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_SHARES = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Content {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:SHARED {at: row.at, count: row.count, lastAt: row.lastAt}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_WROTE = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Comment {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:WROTE]->(b)
    RETURN count(r) AS n
    """
)
CREATE_COMMENT_ON = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Comment {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Content {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:ON]->(b)
    RETURN count(r) AS n
    """
)
CREATE_COMMENTED = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Content {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:COMMENTED {at: row.at, commentId: row.commentId}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_PLACED = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Member {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Purchase {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:PLACED {at: row.at}]->(b)
    RETURN count(r) AS n
    """
)
CREATE_PURCHASE_OF = cypher(
    """
    UNWIND $rows AS row
    MATCH (a:Purchase {id: row.a}) WITH * WHERE a.tenantId = $tenant
    MATCH (b:Product {id: row.b}) WITH * WHERE b.tenantId = $tenant
    CREATE (a)-[r:OF {qty: row.qty, unitPrice: row.unitPrice}]->(b)
    RETURN count(r) AS n
    """
)

# --------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------

HISTORY_DAYS = 540
"""How far back the community goes: the first members joined this many days before ``now``."""
CONTENT_WINDOW_DAYS = 90
"""Content, comments and interactions fall within this many days before ``now``."""
MAX_REFERRAL_DEPTH = 8
"""The deepest invitation chain (levels below a root member that nobody invited)."""

_US_PER_DAY = 86_400_000_000
_US_PER_HOUR = 3_600_000_000
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols: 8 of them are exactly 40 bits

CHANNELS = ("wechat", "wecom", "mini_program", "app", "h5", "livestream", "offline", "referral")
_REFERRAL_CHANNEL = CHANNELS.index("referral")
_SIGNUP_CHANNEL_WEIGHTS = (0.30, 0.14, 0.26, 0.10, 0.08, 0.08, 0.04, 0.0)
_SHARE_CHANNELS = ("wechat", "mini_program", "wecom", "h5", "app")
_SHARE_CHANNEL_WEIGHTS = (0.46, 0.26, 0.10, 0.13, 0.05)
_PURCHASE_CHANNELS = ("mini_program", "app", "h5", "wechat", "livestream", "offline")
_PURCHASE_CHANNEL_WEIGHTS = (0.44, 0.20, 0.09, 0.10, 0.12, 0.05)

CITIES = (
    "上海", "北京", "深圳", "广州", "杭州", "成都", "南京", "苏州", "武汉", "重庆",
    "西安", "天津", "长沙", "厦门", "青岛", "郑州", "宁波", "合肥", "东莞", "佛山",
    "昆明", "福州", "沈阳", "济南", "大连",
)
_CITY_WEIGHTS = (
    14.0, 12.0, 9.0, 8.0, 7.0, 6.0, 4.5, 4.5, 4.0, 4.0,
    3.0, 3.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 1.8, 1.8,
    1.5, 1.5, 1.5, 1.2, 1.0,
)

INTERESTS = (
    "护肤", "咖啡", "跑步", "亲子", "露营", "摄影", "美食", "健身",
    "瑜伽", "读书", "宠物", "旅行", "数码", "穿搭", "烘焙", "花艺",
)
_INTEREST_WEIGHTS = (12.0, 10.0, 9.0, 9.0, 7.0, 6.0, 8.0, 7.0, 5.0, 4.0, 6.0, 6.0, 5.0, 7.0, 4.0, 3.0)
PROFILE_TAGS = (
    "宝妈", "学生党", "职场白领", "银发族", "新手", "资深玩家",
    "价格敏感", "品质优先", "夜猫子", "周末活跃", "高复购", "沉睡唤醒",
)
_INTEREST_TOPICS = (
    ("护肤心得", "成分党"), ("手冲咖啡", "咖啡探店"), ("跑步打卡", "马拉松"), ("育儿经验", "亲子游"),
    ("露营装备", "周末露营"), ("手机摄影", "街拍"), ("家常菜", "美食探店"), ("减脂餐", "增肌训练"),
    ("晨间瑜伽", "冥想"), ("书单推荐", "读书笔记"), ("猫咪日常", "狗狗训练"), ("旅行攻略", "城市漫步"),
    ("数码开箱", "效率工具"), ("每日穿搭", "通勤穿搭"), ("烘焙教程", "下午茶"), ("插花", "绿植养护"),
)
GENERIC_TOPICS = ("好物分享", "新品试用", "会员福利", "开箱", "问答互助", "618大促", "双11", "签到打卡")
TOPICS = tuple(t for pair in _INTEREST_TOPICS for t in pair) + GENERIC_TOPICS
_N_INTEREST_TOPICS = 2 * len(INTERESTS)

# Tags: interests, then profile tags, then topics (the tag index is its position here).
TAGS: tuple[tuple[str, str], ...] = (
    tuple((name, "interest") for name in INTERESTS)
    + tuple((name, "profile") for name in PROFILE_TAGS)
    + tuple((name, "topic") for name in TOPICS)
)
_PROFILE_BASE = len(INTERESTS)
_TOPIC_BASE = len(INTERESTS) + len(PROFILE_TAGS)

_SURNAMES = (
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡",
    "郭", "何", "林", "罗", "高", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹",
    "彭", "曾", "肖", "田", "董", "袁", "潘", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏",
    "吕", "丁", "任", "沈", "姚", "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石",
)
_GIVEN = (
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛",
    "明", "超", "霞", "平", "刚", "晨", "宇", "婷", "雪", "琳", "晓", "慧", "颖", "欣", "然",
    "博", "昊", "宁", "佳", "怡", "轩", "涵", "萱", "睿", "泽", "诺", "彤", "航", "悦", "嘉",
    "子涵", "欣怡", "梓涵", "浩然", "雨欣", "思远", "佳怡", "一诺", "诗涵", "俊杰", "秀英", "桂英",
)
_NICK_PREFIX = ("小", "阿", "大", "老")
_ENGLISH = (
    "Lucy", "Coco", "Kevin", "Momo", "Tina", "Eric", "Amy", "Leo", "Jason", "Vivian",
    "Sunny", "Cherry", "Annie", "Jack", "Mia", "Nina", "Ryan", "Zoe", "Ivy", "Max",
)
_CUTE = ("糖糖", "小鱼儿", "豆豆", "橙子", "七七", "果果", "团子", "木木", "小满", "安安", "米粒", "阿狸")

_BRANDS = ("木棉生活", "轻氧生活", "拾光生活馆", "野鹿好物", "晨光优选", "山谷良品", "白桃优选", "小熊严选")
_BRAND_COMMUNITIES = ("VIP俱乐部", "新品体验官", "品牌粉丝团", "黑卡会员群", "共创官")
_PURPOSE_COMMUNITIES = ("福利秒杀群", "新人成长营", "售后服务群", "拼团互助群", "签到打卡群", "直播粉丝团")
_INTEREST_COMMUNITY_SUFFIX = ("爱好者群", "打卡群", "交流群", "俱乐部", "研习社")
MEMBERSHIP_ROLES = ("owner", "admin", "kol", "member")
INTEREST_SOURCES = ("declared", "behavior", "import")
COMMUNITY_KINDS = ("interest", "region", "brand", "purpose")
COMMUNITY_CHANNELS = ("wechat_group", "wecom", "app_circle", "mini_program")
_COMMUNITY_CHANNEL_WEIGHTS = (0.45, 0.25, 0.15, 0.15)

CONTENT_KINDS = ("post", "article", "video", "live", "question", "review")
_CONTENT_KIND_WEIGHTS = (0.52, 0.09, 0.11, 0.04, 0.12, 0.12)
_KIND_ENGAGEMENT = (1.0, 1.2, 1.5, 2.0, 0.8, 1.1)
_TITLES: tuple[tuple[str, ...], ...] = (
    ("今天的{i}打卡 ✅", "周末{i}小记", "分享一下最近的{i}日常", "{i}第{n}天，坚持就是胜利", "{c}有一起{i}的朋友吗？"),
    ("{i}入门指南：新手必看的{n}个要点", "我的{i}心得（长文）", "{i}避坑指南", "聊聊{i}这件小事"),
    ("【视频】{i}教程第{n}期", "一分钟看懂{i}", "vlog｜我的{i}日常", "{i}实拍合集"),
    ("今晚8点直播：聊聊{i}", "{i}专场直播回放", "直播预告｜{i}好物分享"),
    ("请教一下，{i}新手怎么开始？", "{i}有什么推荐的装备吗？", "求助：{i}遇到瓶颈怎么办", "{c}有什么{i}好去处推荐吗？"),
    ("{p}使用一个月的真实测评", "{p}开箱 & 体验", "回购第{n}次的{p}", "{p}值不值得买？说说我的感受"),
)
_BODIES = (
    "最近一直在坚持{i}，状态越来越好了。",
    "和群里的朋友们一起{i}，真的很有动力。",
    "记录一下，希望自己能坚持下去。",
    "有同样爱好的朋友欢迎一起交流～",
    "这次参加了品牌的会员活动，体验很不错。",
    "整理了一些经验，希望对大家有帮助。",
    "{c}的小伙伴们周末有空可以约起来！",
    "用了{p}之后感觉提升很明显。",
    "第一次发帖，请大家多多指教。",
    "欢迎在评论区留下你的建议。",
)
_COMMENTS = (
    "好棒！", "请问在哪里买的？", "已收藏，周末试试", "同款！", "求链接～", "太有用了，谢谢分享",
    "学到了👍", "一起加油！", "{i}真的会上瘾", "坐标{c}，求组队", "楼主好厉害", "马住",
    "有优惠券吗？", "刚下单了", "这个我也在用，很不错", "期待下一期",
)
_VARIANTS = ("经典款", "升级款", "限定款", "旅行装", "家庭装")
_VARIANT_PRICE = (1.0, 1.35, 1.6, 0.55, 1.8)
# (item, base price in fen) per interest category, in the order of INTERESTS.
_CATALOGUE: tuple[tuple[tuple[str, int], ...], ...] = (
    (("氨基酸洁面乳", 6900), ("玻尿酸精华液", 19900), ("修护面霜", 25900), ("清透防晒乳", 12900), ("补水面膜10片装", 8900)),
    (("挂耳咖啡20包", 5900), ("云南小粒咖啡豆500g", 8800), ("冷萃咖啡液", 4900), ("手冲壶", 16900)),
    (("轻量缓震跑鞋", 59900), ("速干运动T恤", 12900), ("跑步腰包", 6900), ("压缩袜", 4900)),
    (("儿童绘本套装", 9900), ("儿童保温杯", 12900), ("益智拼图", 5900)),
    (("自动速开帐篷", 49900), ("折叠月亮椅", 15900), ("露营灯", 8900), ("户外天幕", 39900)),
    (("便携三脚架", 19900), ("相机双肩包", 29900), ("手机补光灯", 6900)),
    (("坚果礼盒", 12800), ("低卡零食组合", 6900), ("手工辣酱", 3900)),
    (("乳清蛋白粉2磅", 26900), ("弹力带套装", 4900), ("筋膜枪", 39900)),
    (("瑜伽服套装", 23900), ("TPE瑜伽垫", 9900), ("瑜伽砖", 3900)),
    (("年度书单礼盒", 19900), ("阅读灯", 12900)),
    (("全价猫粮2kg", 12900), ("冻干零食", 6900), ("宠物自动饮水机", 15900)),
    (("20寸登机箱", 39900), ("旅行收纳套装", 7900)),
    (("无线降噪耳机", 69900), ("65W氮化镓充电器", 14900), ("磁吸充电宝", 19900)),
    (("基础款白T", 9900), ("通勤西装外套", 49900), ("帆布托特包", 12900)),
    (("家用烤箱", 39900), ("烘焙工具套装", 8900), ("低筋面粉", 2900)),
    (("鲜花月卡", 19900), ("多肉组合盆栽", 5900)),
)
_CATALOGUE_FLAT: tuple[tuple[int, str, int], ...] = tuple(
    (cat, item, price) for cat, items in enumerate(_CATALOGUE) for item, price in items
)

_PHONE_PREFIXES = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159,
    166, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 198, 199,
)

# --------------------------------------------------------------------------------------
# Public results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoSummary:
    """How many nodes and relationships of each kind were written (or are planned)."""

    members: int
    communities: int
    follows: int
    referrals: int
    memberships: int
    contents: int
    comments: int
    likes: int
    shares: int
    favorites: int
    products: int
    purchases: int
    tags: int


@dataclass(frozen=True, eq=False)
class Stage:
    """One kind of node or relationship to write: a statement and the rows it takes.

    Attributes
    ----------
    name:
        The stage name reported to ``progress`` (``"members"``, ``"follows"`` ...).
    query:
        The ``UNWIND $rows AS row`` statement that writes one batch.
    total:
        How many rows the stage has.
    make:
        ``make(start, stop)`` builds the rows ``start:stop`` as parameter dicts.
    summary_field:
        The :class:`DemoSummary` field this stage counts, or ``None``.
    """

    name: str
    query: LiteralString
    total: int
    make: Callable[[int, int], list[Row]]
    summary_field: str | None = None

    def rows(self, start: int = 0, stop: int | None = None) -> list[Row]:
        """The rows ``start:stop`` (all of them by default)."""
        end = self.total if stop is None else min(stop, self.total)
        return self.make(start, end) if start < end else []

    def batches(self, size: int) -> Iterator[list[Row]]:
        """The rows in consecutive batches of at most *size*."""
        if size < 1:
            raise ValueError("batch size must be at least 1")
        for start in range(0, self.total, size):
            yield self.make(start, min(start + size, self.total))


@dataclass(frozen=True, eq=False)
class DemoData:
    """A generated community: the tenant, the planned counts and the stages that write it.

    Attributes
    ----------
    tenant, seed, now:
        The arguments of :func:`generate`.
    tenant_name:
        The brand name written on the ``Tenant`` node.
    tenant_created_at:
        When the tenant started (before its first member joined).
    summary:
        The counts the loader writes when nothing goes wrong.
    stages:
        Node stages first, then relationship stages, in load order.
    """

    tenant: str
    seed: int
    now: datetime
    tenant_name: str
    tenant_created_at: datetime
    summary: DemoSummary
    stages: tuple[Stage, ...] = field(repr=False)

    def stage(self, name: str) -> Stage:
        """The stage called *name* (``KeyError`` when there is none)."""
        for st in self.stages:
            if st.name == name:
                return st
        raise KeyError(name)

    def rows(self, name: str) -> list[Row]:
        """All rows of the stage called *name*."""
        return self.stage(name).rows()

    def relationship_count(self) -> int:
        """How many relationships the stages write in total."""
        return sum(st.total for st in self.stages if st.name in EDGE_STAGES)


NODE_STAGES = ("members", "communities", "tags", "products", "contents", "comments", "purchases")
EDGE_STAGES = (
    "referrals", "follows", "memberships", "interests", "posted", "content_in", "about",
    "likes", "favorites", "shares", "wrote", "comment_on", "commented", "placed", "purchase_of",
)

# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def _b36(value: int, width: int) -> str:
    digits: list[str] = []
    while value:
        value, r = divmod(value, 36)
        digits.append(_B36[r])
    return "".join(reversed(digits)).rjust(width, "0")


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def _probs(weights: Sequence[float]) -> F64:
    w = np.asarray(weights, dtype=np.float64)
    out: F64 = w / w.sum()
    return out


def _weighted(rng: np.random.Generator, cumulative: F64, size: int) -> I64:
    """Indices drawn with probability proportional to the weights behind *cumulative*.

    The uniforms are drawn already sorted (normalised cumulative sums of exponentials) so
    the binary searches walk the table in order, then the picks are shuffled: several
    times faster than unsorted look-ups into a table of a million weights.
    """
    if size == 0:
        return np.zeros(0, dtype=np.int64)
    gaps = np.cumsum(rng.exponential(1.0, size=size + 1))
    needles = gaps[:-1] * (cumulative[-1] / gaps[-1])
    picks = np.minimum(np.searchsorted(cumulative, needles, side="right"), len(cumulative) - 1)
    out: I64 = picks[rng.permutation(size)].astype(np.int64)
    return out


def _groups(keys: I64, n: int) -> tuple[I64, I64, I64]:
    """CSR view of *keys* in ``0..n-1``: (order, offsets, counts); group g is order[offsets[g]:...]."""
    order = np.argsort(keys).astype(np.int64)
    counts = np.bincount(keys, minlength=n).astype(np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return order, offsets, counts


def _pick_in_groups(rng: np.random.Generator, order: I64, offsets: I64, counts: I64, groups: I64) -> I64:
    """One uniformly random element of each requested (non-empty) group."""
    within = np.floor(rng.random(len(groups)) * counts[groups]).astype(np.int64)
    out: I64 = order[offsets[groups] + within]
    return out


def _after(rng: np.random.Generator, lo: I64, hi: int, mean_us: float) -> I64:
    """A time at or after *lo* (exponential delay, mean *mean_us*), never after *hi*."""
    lo = np.minimum(lo, hi)
    room = hi - lo
    delay = rng.exponential(mean_us, size=len(lo))
    late = delay > room
    delay[late] = rng.random(int(late.sum())) * room[late]
    out: I64 = lo + np.minimum(delay.astype(np.int64), room)
    return out


def _between(rng: np.random.Generator, lo: I64, hi: int | I64) -> I64:
    """A uniform time in ``[lo, hi]`` (``lo`` when the interval is empty)."""
    room = np.maximum(np.asarray(hi, dtype=np.int64) - lo, 0)
    out: I64 = lo + (rng.random(len(lo)) * room).astype(np.int64)
    return out


def _unique_pairs(a: I64, b: I64, n_b: int) -> I64:
    """Positions of the first occurrence of each distinct (a, b) pair, sorted by (a, b)."""
    _, first = np.unique(a * np.int64(n_b) + b, return_index=True)
    out: I64 = first.astype(np.int64)
    return out


def _rng(entropy: int, phase: int) -> np.random.Generator:
    return np.random.default_rng([entropy, phase])


@dataclass(frozen=True, slots=True)
class _Times:
    """A relationship property column of datetimes (microseconds since the epoch)."""

    us: I64


@dataclass(frozen=True, slots=True)
class _Enum:
    """A relationship property column of strings from a closed list."""

    names: Sequence[str]
    idx: I64


@dataclass(frozen=True, slots=True)
class _OwnIds:
    """A relationship property column holding the id (with *prefix*) of the row's position."""

    prefix: str


_Column = I64 | F64 | _Times | _Enum | _OwnIds


# --------------------------------------------------------------------------------------
# The world: every generated column
# --------------------------------------------------------------------------------------


class _World:
    """All generated columns of one community (internal; rows are built from these)."""

    def __init__(self, tenant: str, n: int, seed: int, now: datetime) -> None:
        self.tenant = tenant
        self.n = n
        self.seed = seed
        self.now = to_micros(now)
        self.hi = self.now - 1_000_000  # nothing happens in the last second before `now`
        self.start = self.now - HISTORY_DAYS * _US_PER_DAY
        self.entropy = _hash_int(f"quanzi-demo:{seed}")
        th = _b36(_hash_int(f"tenant:{tenant}") % 36**6, 6)
        sh = _b36(_hash_int(f"seed:{seed}") % 36**4, 4)
        self.token = th + sh
        self.sku_prefix = "D" + sh.upper()
        self.brand = _BRANDS[self.entropy % len(_BRANDS)]
        self.campaigns = self._campaign_windows()
        self._members()
        self._referrals()
        self._interests()
        self._communities()
        self._memberships()
        self._follows()
        self._roles_and_times()
        self._products()
        self._contents()
        self._engagement()
        self._purchases()
        self._points()

    # ids ------------------------------------------------------------------------------

    def ids(self, prefix: str, idx: Sequence[int]) -> list[str]:
        head = prefix + "_" + self.token
        return [head + _b36(i, 7) for i in idx]

    def invite_codes(self, idx: Sequence[int]) -> list[str]:
        out: list[str] = []
        a, b = self.code_mul, self.code_add
        for i in idx:
            v = (i * a + b) & 0xFF_FFFF_FFFF  # a bijection of 40-bit integers: codes are unique
            out.append("".join(_CODE_ALPHABET[(v >> s) & 31] for s in (35, 30, 25, 20, 15, 10, 5, 0)))
        return out

    # phases ---------------------------------------------------------------------------

    def _campaign_windows(self) -> list[tuple[int, int]]:
        windows = []
        day = 30
        while day + 10 < HISTORY_DAYS - 5:
            windows.append((self.start + day * _US_PER_DAY, self.start + (day + 10) * _US_PER_DAY))
            day += 60
        return windows

    def _members(self) -> None:
        n, rng = self.n, _rng(self.entropy, 1)
        founders = min(n, max(3, n // 200))
        last = self.now - 2 * _US_PER_HOUR
        span = last - self.start
        joined = np.empty(n, dtype=np.int64)
        joined[:founders] = self.start + (rng.random(founders) * 14 * _US_PER_DAY).astype(np.int64)
        rest = n - founders
        in_campaign = rng.random(rest) < 0.22
        base = self.start + (rng.random(rest) ** (1 / 1.6) * span).astype(np.int64)
        win = rng.integers(0, len(self.campaigns), size=rest)
        w_lo = np.array([w[0] for w in self.campaigns], dtype=np.int64)[win]
        w_hi = np.array([w[1] for w in self.campaigns], dtype=np.int64)[win]
        camp = w_lo + (rng.random(rest) * (w_hi - w_lo)).astype(np.int64)
        joined[founders:] = np.where(in_campaign, camp, base)
        joined.sort()
        # strictly increasing, so "joined before" is "has a smaller index"
        ar = np.arange(n, dtype=np.int64)
        joined = np.maximum.accumulate(joined - ar) + ar
        joined = np.minimum(joined, last - (n - 1 - ar))
        self.joined = joined
        self.founders = founders
        self.city = rng.choice(len(CITIES), size=n, p=_probs(_CITY_WEIGHTS)).astype(np.int64)
        self.channel = rng.choice(len(CHANNELS), size=n, p=_probs(_SIGNUP_CHANNEL_WEIGHTS)).astype(np.int64)
        self.name_style = rng.choice(5, size=n, p=[0.62, 0.08, 0.12, 0.1, 0.08]).astype(np.int64)
        self.name_a = rng.integers(0, 1 << 30, size=n, dtype=np.int64)
        self.name_b = rng.integers(0, 1 << 30, size=n, dtype=np.int64)
        self.phone = (
            np.asarray(_PHONE_PREFIXES, dtype=np.int64)[rng.integers(0, len(_PHONE_PREFIXES), size=n)] * 100_000_000
            + rng.integers(0, 100_000_000, size=n, dtype=np.int64)
        )
        self.wechat = rng.integers(0, 36**12, size=n, dtype=np.int64)
        self.marketing = rng.random(n) < 0.72
        self.profiling = rng.random(n) < 0.81
        self.code_mul = (_hash_int(f"code-mul:{self.tenant}:{self.seed}") | 1) & 0xFF_FFFF_FFFF
        self.code_add = _hash_int(f"code-add:{self.tenant}:{self.seed}") & 0xFF_FFFF_FFFF
        self.activity = rng.lognormal(0.0, 1.0, size=n)

    def _in_campaign(self, t: I64) -> I64:
        """The campaign window index of each time, or -1."""
        out = np.full(len(t), -1, dtype=np.int64)
        for k, (lo, hi) in enumerate(self.campaigns):
            out[(t >= lo) & (t < hi)] = k
        return out

    def _referrals(self) -> None:
        n, rng = self.n, _rng(self.entropy, 2)
        campaign = self._in_campaign(self.joined)
        p = np.where(campaign >= 0, 0.62, 0.28)
        referred = rng.random(n) < p
        referred[: self.founders] = False
        parent = np.full(n, -1, dtype=np.int64)
        depth = np.zeros(n, dtype=np.int64)
        u_mode = rng.random(n).tolist()
        u_pick = rng.random(n).tolist()
        recency = rng.exponential(1.0, size=n).tolist()
        parent_l = parent.tolist()
        depth_l = depth.tolist()
        inviters: list[int] = []
        for i in np.flatnonzero(referred).tolist():
            if inviters and u_mode[i] < 0.5:
                j = inviters[int(u_pick[i] * len(inviters))]
            else:
                back = 1 + int(recency[i] * max(3.0, 0.04 * i))
                j = max(0, i - back)
            while depth_l[j] >= MAX_REFERRAL_DEPTH:
                j = parent_l[j]
            parent_l[i] = j
            depth_l[i] = depth_l[j] + 1
            inviters.append(j)
        self.parent = np.asarray(parent_l, dtype=np.int64)
        self.depth = np.asarray(depth_l, dtype=np.int64)
        self.referred = self.parent >= 0
        self.channel[self.referred] = _REFERRAL_CHANNEL
        self.channel[~self.referred & (self.channel == _REFERRAL_CHANNEL)] = 0
        self.ref_invitee = np.flatnonzero(self.referred).astype(np.int64)
        self.ref_inviter = self.parent[self.ref_invitee]
        self.ref_campaign = campaign[self.ref_invitee]
        self.ref_channel = rng.choice(len(_SHARE_CHANNELS), size=len(self.ref_invitee), p=_probs(_SHARE_CHANNEL_WEIGHTS))
        self.invitees = np.bincount(self.ref_inviter, minlength=n).astype(np.int64)

    def _interests(self) -> None:
        n, rng = self.n, _rng(self.entropy, 3)
        pop = _probs(_INTEREST_WEIGHTS)
        self.primary = rng.choice(len(INTERESTS), size=n, p=pop).astype(np.int64)
        self.secondary = rng.choice(len(INTERESTS), size=n, p=pop).astype(np.int64)
        k = rng.choice(4, size=n, p=[0.25, 0.35, 0.25, 0.15]) + 1
        m_parts = [np.arange(n, dtype=np.int64)]
        t_parts = [self.primary]
        s_parts = [np.zeros(n, dtype=np.int64)]
        w_parts = [0.6 + 0.4 * rng.random(n)]
        extra_interest = rng.choice(len(INTERESTS), size=n, p=pop).astype(np.int64)
        profile = _PROFILE_BASE + rng.integers(0, len(PROFILE_TAGS), size=n, dtype=np.int64)
        for slot, tags, source, lo, width in (
            (2, self.secondary, 1, 0.25, 0.6),
            (3, profile, 2, 0.3, 0.6),
            (4, extra_interest, 1, 0.15, 0.5),
        ):
            mask = k >= slot
            m_parts.append(np.flatnonzero(mask).astype(np.int64))
            t_parts.append(tags[mask])
            s_parts.append(np.full(int(mask.sum()), source, dtype=np.int64))
            w_parts.append(lo + width * rng.random(int(mask.sum())))
        m = np.concatenate(m_parts)
        t = np.concatenate(t_parts)
        keep = _unique_pairs(m, t, len(TAGS))
        self.int_member = m[keep]
        self.int_tag = t[keep]
        self.int_source = np.concatenate(s_parts)[keep]
        self.int_weight = np.round(np.concatenate(w_parts)[keep], 3)

    def _communities(self) -> None:
        n, rng = self.n, _rng(self.entropy, 4)
        total = min(2000, max(8, n // 100))
        n_region = max(2, round(0.25 * total))
        n_brand = max(1, round(0.10 * total))
        n_purpose = max(1, round(0.15 * total))
        n_interest = total - n_region - n_brand - n_purpose
        kinds: list[int] = []
        keys: list[int] = []
        names: list[str] = []
        descriptions: list[str] = []
        int_order = np.argsort(-np.asarray(_INTEREST_WEIGHTS), kind="stable").tolist()
        interest_of = int_order[: min(n_interest, len(INTERESTS))]
        if n_interest > len(interest_of):
            interest_of += rng.choice(len(INTERESTS), size=n_interest - len(interest_of), p=_probs(_INTEREST_WEIGHTS)).tolist()
        seen: dict[tuple[int, int], int] = {}
        for x in interest_of:
            count = seen[(0, x)] = seen.get((0, x), 0) + 1
            suffix = _INTEREST_COMMUNITY_SUFFIX[(x + count - 1) % len(_INTEREST_COMMUNITY_SUFFIX)]
            name = f"{INTERESTS[x]}{suffix}" + (f"{count}群" if count > len(_INTEREST_COMMUNITY_SUFFIX) else "")
            kinds.append(0)
            keys.append(x)
            names.append(name)
            descriptions.append(f"{self.brand}的{INTERESTS[x]}圈子：分享{INTERESTS[x]}心得、参与打卡和会员专属活动。")
        city_of = list(range(min(n_region, len(CITIES))))
        if n_region > len(city_of):
            city_of += rng.choice(len(CITIES), size=n_region - len(city_of), p=_probs(_CITY_WEIGHTS)).tolist()
        for c in city_of:
            count = seen[(1, c)] = seen.get((1, c), 0) + 1
            kinds.append(1)
            keys.append(c)
            names.append(f"{CITIES[c]}会员群" if count == 1 else f"{CITIES[c]}会员{count}群")
            descriptions.append(f"{CITIES[c]}的{self.brand}会员交流群：同城活动、线下门店与本地福利。")
        for kind, count_of, pool in ((2, n_brand, _BRAND_COMMUNITIES), (3, n_purpose, _PURPOSE_COMMUNITIES)):
            for j in range(count_of):
                base = pool[j % len(pool)]
                round_ = j // len(pool)
                kinds.append(kind)
                keys.append(0)
                names.append(f"{self.brand}{base}" + (f"{round_ + 1}群" if round_ else ""))
                descriptions.append(f"{self.brand}官方社群「{base}」：新品、福利与会员服务。")
        self.comm_kind = np.asarray(kinds, dtype=np.int64)
        self.comm_key = np.asarray(keys, dtype=np.int64)
        self.comm_name = names
        self.comm_desc = descriptions
        self.comm_channel = rng.choice(len(COMMUNITY_CHANNELS), size=total, p=_probs(_COMMUNITY_CHANNEL_WEIGHTS))
        self.n_comm = total

    def _pool(self, members: list[int]) -> tuple[I64, F64]:
        ids = np.asarray(members, dtype=np.int64)
        weights = 1.0 / np.arange(1, len(ids) + 1, dtype=np.float64) ** 0.8
        return ids, np.cumsum(weights)

    def _memberships(self) -> None:
        n, rng = self.n, _rng(self.entropy, 5)
        interest_pool: dict[int, list[int]] = {}
        region_pool: dict[int, list[int]] = {}
        general: list[int] = []
        for c in range(self.n_comm):
            kind, key = int(self.comm_kind[c]), int(self.comm_key[c])
            if kind == 0:
                interest_pool.setdefault(key, []).append(c)
            elif kind == 1:
                region_pool.setdefault(key, []).append(c)
            else:
                general.append(c)
        k = rng.choice(4, size=n, p=[0.40, 0.32, 0.18, 0.10]) + 1
        m = np.repeat(np.arange(n, dtype=np.int64), k)
        slot = np.arange(len(m), dtype=np.int64) - np.repeat(np.cumsum(k) - k, k)
        r = rng.random(len(m))
        use_secondary = (slot > 0) & (rng.random(len(m)) < 0.6)
        interest = np.where(use_secondary, self.secondary[m], self.primary[m])
        city = self.city[m]
        has_interest = np.isin(interest, np.asarray(sorted(interest_pool), dtype=np.int64))
        has_region = np.isin(city, np.asarray(sorted(region_pool), dtype=np.int64))
        want = np.where(r < 0.5, 0, np.where(r < 0.75, 1, 2))
        want = np.where((want == 0) & ~has_interest, np.where(has_region, 1, 2), want)
        want = np.where((want == 1) & ~has_region, np.where(has_interest, 0, 2), want)
        key = np.where(want == 0, interest, np.where(want == 1, city, 0)) + want * 1000
        community = np.empty(len(m), dtype=np.int64)
        for code in np.unique(key).tolist():
            sel = np.flatnonzero(key == code)
            kind, value = divmod(code, 1000)
            members = interest_pool[value] if kind == 0 else region_pool[value] if kind == 1 else general
            ids, cum = self._pool(members)
            community[sel] = ids[_weighted(rng, cum, len(sel))]
        # every community has at least a few members
        need = min(3, n)
        counts = np.bincount(community, minlength=self.n_comm)
        extra_m: list[int] = []
        extra_c: list[int] = []
        for c in np.flatnonzero(counts < need).tolist():
            for member in rng.choice(n, size=need, replace=False).tolist():
                extra_m.append(member)
                extra_c.append(c)
        m = np.concatenate([m, np.asarray(extra_m, dtype=np.int64)])
        community = np.concatenate([community, np.asarray(extra_c, dtype=np.int64)])
        keep = _unique_pairs(m, community, self.n_comm)  # sorted by member, then community
        self.ms_member = m[keep]
        self.ms_comm = community[keep]
        self.ms_by_member = _groups(self.ms_member, n)
        self.ms_by_comm = _groups(self.ms_comm, self.n_comm)

    def _follows(self) -> None:
        n, rng = self.n, _rng(self.entropy, 6)
        # Who gets followed: a small tier of opinion leaders (the top ~0.5%, Zipf among
        # themselves) takes a third of the popularity-driven follows; everybody else has a
        # milder heavy-tailed appeal that grows with tenure and with the people they invited.
        tenure = (self.now - self.joined) / (HISTORY_DAYS * _US_PER_DAY)
        merit = np.sqrt(tenure + 0.15) * (1.0 + self.invitees) ** 0.3
        appeal = (rng.pareto(1.5, size=n) + 1.0) * merit
        appeal *= 0.65 / appeal.sum()
        n_stars = max(1, round(0.005 * n))
        stars = np.argsort(-(np.log(merit * self.activity) + rng.gumbel(size=n)), kind="stable")[:n_stars]
        zipf = 1.0 / np.arange(1, n_stars + 1, dtype=np.float64) ** 0.7
        appeal[stars] += 0.35 * zipf / zipf.sum()
        self.appeal = appeal
        if n < 2:
            self.fo_src = self.fo_dst = self.fo_at = np.zeros(0, dtype=np.int64)
            self.indeg = np.zeros(n, dtype=np.int64)
            return
        degree = np.minimum(np.floor(rng.lognormal(math.log(5.2), 1.0, size=n)), min(n - 1, 3000)).astype(np.int64)
        src = np.repeat(np.arange(n, dtype=np.int64), degree)
        local = rng.random(len(src)) < 0.35
        dst = np.empty(len(src), dtype=np.int64)
        dst[~local] = _weighted(rng, np.cumsum(appeal), int((~local).sum()))
        loc = np.flatnonzero(local)
        order, offsets, counts = self.ms_by_member
        mine = _pick_in_groups(rng, order, offsets, counts, src[loc])
        c_order, c_offsets, c_counts = self.ms_by_comm
        dst[loc] = self.ms_member[_pick_in_groups(rng, c_order, c_offsets, c_counts, self.ms_comm[mine])]
        # most invitees follow whoever invited them, right away
        back = self.ref_invitee[rng.random(len(self.ref_invitee)) < 0.7]
        src = np.concatenate([back, src])
        dst = np.concatenate([self.parent[back], dst])
        quick = np.concatenate([np.ones(len(back), dtype=np.bool_), np.zeros(len(dst) - len(back), dtype=np.bool_)])
        ok = src != dst
        src, dst, quick = src[ok], dst[ok], quick[ok]
        keep = _unique_pairs(src, dst, n)
        src, dst, quick = src[keep], dst[keep], quick[keep]
        lo = np.maximum(self.joined[src], self.joined[dst])
        at = np.where(
            quick,
            _after(rng, lo, self.hi, 2 * _US_PER_HOUR),
            _after(rng, lo, self.hi, 20 * _US_PER_DAY),
        )
        self.fo_src, self.fo_dst, self.fo_at = src, dst, at
        self.indeg = np.bincount(dst, minlength=n).astype(np.int64)

    def _roles_and_times(self) -> None:
        n, rng = self.n, _rng(self.entropy, 7)
        order = np.lexsort((self.ms_member, self.ms_comm))  # by community, then join order
        comm = self.ms_comm[order]
        member = self.ms_member[order]
        starts = self.ms_by_comm[1][:-1]
        rank = np.arange(len(order), dtype=np.int64) - starts[comm]
        size = self.ms_by_comm[2][comm]
        role = np.full(len(order), 3, dtype=np.int64)  # owner 0, admin 1, kol 2, member 3
        role[rank == 0] = 0
        admins = np.where(size >= 4, 2, np.where(size >= 2, 1, 0))
        role[(rank >= 1) & (rank <= admins)] = 1
        self.kol_threshold = max(5.0, float(np.quantile(self.indeg, 0.98))) if n else 5.0
        rest = np.flatnonzero(role == 3)
        by_pop = rest[np.lexsort((member[rest], -self.indeg[member[rest]], comm[rest]))]
        pc = comm[by_pop]
        first = np.zeros(self.n_comm, dtype=np.int64)
        boundary = np.r_[True, pc[1:] != pc[:-1]] if len(pc) else np.zeros(0, dtype=np.bool_)
        first[pc[boundary]] = np.flatnonzero(boundary)
        pop_rank = np.arange(len(by_pop), dtype=np.int64) - first[pc]
        quota = np.maximum(1, np.round(self.ms_by_comm[2] * 0.03)).astype(np.int64)
        is_kol = (pop_rank < quota[pc]) & (self.indeg[member[by_pop]] >= self.kol_threshold)
        role[by_pop[is_kol]] = 2
        # the community starts when its owner (its earliest member) opens it
        owner = member[rank == 0]
        owned = comm[rank == 0]
        created = np.empty(self.n_comm, dtype=np.int64)
        created[owned] = _after(rng, self.joined[owner], self.hi - _US_PER_HOUR, 2 * _US_PER_DAY)
        joined = np.where(
            role == 0,
            created[comm],
            _after(rng, np.maximum(self.joined[member], created[comm]) + 1, self.hi - _US_PER_HOUR, 4 * _US_PER_DAY),
        )
        # back to (member, community) order
        inverse = np.empty(len(order), dtype=np.int64)
        inverse[order] = np.arange(len(order), dtype=np.int64)
        self.ms_role = role[inverse]
        self.ms_joined = joined[inverse]
        self.comm_created = created
        self.is_kol = np.zeros(n, dtype=np.bool_)
        self.is_kol[member[role == 2]] = True
        self.is_staff = np.zeros(n, dtype=np.bool_)
        self.is_staff[member[role <= 1]] = True

    def _products(self) -> None:
        rng = _rng(self.entropy, 8)
        total = int(min(200, max(50, 50 + round(0.9 * math.sqrt(self.n)))))
        base = len(_CATALOGUE_FLAT)
        cats, names, prices = [], [], []
        for k in range(total):
            cat, item, price = _CATALOGUE_FLAT[k % base]
            variant = (k // base) % len(_VARIANTS)
            cats.append(cat)
            names.append(f"{self.brand} {item}" + (f"（{_VARIANTS[variant]}）" if k >= base else ""))
            yuan = int(price * _VARIANT_PRICE[variant] * (0.9 + 0.2 * float(rng.random())) / 100)
            prices.append(100 * (yuan - yuan % 10 + 9 if yuan >= 20 else max(yuan, 1)))  # ¥129, ¥59 ...
        self.prod_cat = np.asarray(cats, dtype=np.int64)
        self.prod_name = names
        self.prod_price = np.asarray(prices, dtype=np.int64)
        launch = rng.random(total) < 0.7
        launch[: min(total, base)] = True
        created = np.where(
            launch,
            self.start - (rng.random(total) * 30 * _US_PER_DAY).astype(np.int64) - _US_PER_DAY,
            self.start + (rng.random(total) * (HISTORY_DAYS - 30) * _US_PER_DAY).astype(np.int64),
        )
        self.prod_created = created.astype(np.int64)
        self.prod_launch = np.flatnonzero(launch).astype(np.int64)
        self.prod_pop = 1.0 / np.arange(1, total + 1, dtype=np.float64) ** 0.7
        rng.shuffle(self.prod_pop)
        self.prod_by_cat = _groups(self.prod_cat, len(INTERESTS))
        self.n_prod = total

    def _contents(self) -> None:
        n, rng = self.n, _rng(self.entropy, 9)
        window_start = self.now - CONTENT_WINDOW_DAYS * _US_PER_DAY
        fraction = np.clip((self.hi - np.maximum(self.joined, window_start)) / (CONTENT_WINDOW_DAYS * _US_PER_DAY), 0.0, 1.0)
        lurker = (rng.random(n) < 0.45) & ~self.is_kol & ~self.is_staff
        weight = self.activity * (1.0 + self.indeg) ** 0.6 * fraction * np.where(lurker, 0.0, 1.0)
        weight *= np.where(self.is_kol, 3.0, 1.0) * np.where(self.is_staff, 1.5, 1.0)
        total = round(1.5 * n) if weight.sum() > 0 else 0
        author = _weighted(rng, np.cumsum(weight), total)
        order, offsets, counts = self.ms_by_member
        ms = _pick_in_groups(rng, order, offsets, counts, author)
        lo = np.maximum(self.ms_joined[ms], window_start) + 1
        created = _between(rng, lo, self.hi)
        # content in time order, so ids grow with createdAt
        by_time = np.argsort(created, kind="stable")
        self.ct_author = author[by_time]
        self.ct_comm = self.ms_comm[ms][by_time]
        self.ct_created = created[by_time]
        self.ct_kind = rng.choice(len(CONTENT_KINDS), size=total, p=_probs(_CONTENT_KIND_WEIGHTS)).astype(np.int64)
        self.ct_tpl = rng.integers(0, 1 << 30, size=total, dtype=np.int64)
        self.ct_product = self._products_for(rng, self.primary[self.ct_author], 0.8)
        specific = rng.random(total) < 0.7
        first = np.where(
            specific,
            _TOPIC_BASE + 2 * self.primary[self.ct_author] + rng.integers(0, 2, size=total),
            _TOPIC_BASE + _N_INTEREST_TOPICS + rng.integers(0, len(GENERIC_TOPICS), size=total),
        )
        second_mask = rng.random(total) < 0.35
        second = _TOPIC_BASE + _N_INTEREST_TOPICS + rng.integers(0, len(GENERIC_TOPICS), size=int(second_mask.sum()))
        c = np.concatenate([np.arange(total, dtype=np.int64), np.flatnonzero(second_mask).astype(np.int64)])
        t = np.concatenate([first, second]).astype(np.int64)
        keep = _unique_pairs(c, t, len(TAGS))
        self.ab_content, self.ab_tag = c[keep], t[keep]
        self.n_content = total

    def _products_for(self, rng: np.random.Generator, interest: I64, matched: float) -> I64:
        """A product per row: from the interest's category with probability *matched*, else popular."""
        size = len(interest)
        out = _weighted(rng, np.cumsum(self.prod_pop), size)
        order, offsets, counts = self.prod_by_cat
        same = (rng.random(size) < matched) & (counts[interest] > 0)
        out[same] = _pick_in_groups(rng, order, offsets, counts, interest[same])
        return out

    def _interactions(self, rng: np.random.Generator, per_content: float, mean_delay: float) -> tuple[I64, I64, I64]:
        """(member, content, at) for one interaction type, without duplicates or self-interaction."""
        total = round(per_content * self.n_content)
        if total == 0 or self.n < 2:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        content = _weighted(rng, np.cumsum(self.engagement), total)
        author = self.ct_author[content]
        member = rng.integers(0, self.n, size=total, dtype=np.int64)  # 10%: anyone
        source = rng.random(total)
        f_order, f_offsets, f_counts = self.fo_by_dst
        via_follow = (source < 0.45) & (f_counts[author] > 0)
        member[via_follow] = self.fo_src[_pick_in_groups(rng, f_order, f_offsets, f_counts, author[via_follow])]
        via_comm = ~via_follow & (source < 0.9)
        c_order, c_offsets, c_counts = self.ms_by_comm
        member[via_comm] = self.ms_member[_pick_in_groups(rng, c_order, c_offsets, c_counts, self.ct_comm[content[via_comm]])]
        ok = member != author
        member, content = member[ok], content[ok]
        keep = _unique_pairs(member, content, self.n_content)
        member, content = member[keep], content[keep]
        lo = np.maximum(self.ct_created[content], self.joined[member]) + 1
        at = _after(rng, lo, self.hi, mean_delay)
        return member, content, at

    def _engagement(self) -> None:
        rng = _rng(self.entropy, 10)
        kind_factor = np.asarray(_KIND_ENGAGEMENT)[self.ct_kind]
        noise = rng.lognormal(0.0, 0.6, size=self.n_content)
        self.engagement = (1.0 + self.indeg[self.ct_author]) ** 0.75 * kind_factor * noise
        self.fo_by_dst = _groups(self.fo_dst, self.n)
        self.lk_member, self.lk_content, self.lk_at = self._interactions(rng, 2.0, 1.5 * _US_PER_DAY)
        self.fv_member, self.fv_content, self.fv_at = self._interactions(rng, 0.35, 2.0 * _US_PER_DAY)
        self.sh_member, self.sh_content, self.sh_at = self._interactions(rng, 0.18, 1.0 * _US_PER_DAY)
        self.sh_count = rng.geometric(0.65, size=len(self.sh_member)).astype(np.int64)
        self.sh_last = np.where(self.sh_count > 1, _after(rng, self.sh_at, self.hi, 3 * _US_PER_DAY), self.sh_at)
        self.cm_member, self.cm_content, self.cm_at = self._interactions(rng, 0.6, 12 * _US_PER_HOUR)
        by_time = np.argsort(self.cm_at, kind="stable")
        self.cm_member, self.cm_content, self.cm_at = self.cm_member[by_time], self.cm_content[by_time], self.cm_at[by_time]
        self.cm_tpl = rng.integers(0, 1 << 30, size=len(self.cm_member), dtype=np.int64)

    def _purchases(self) -> None:
        n, rng = self.n, _rng(self.entropy, 11)
        kol_fan = np.zeros(n, dtype=np.bool_)
        kol_fan[self.fo_src[self.is_kol[self.fo_dst]]] = True
        propensity = (
            np.where(self.referred, 1.5, 1.0)
            * np.where(kol_fan, 1.3, 1.0)
            * (0.4 + np.clip((self.now - self.joined) / (HISTORY_DAYS * _US_PER_DAY), 0.0, 1.0))
        )
        p = np.clip(propensity * (0.30 * n / max(propensity.sum(), 1e-9)), 0.0, 0.95)
        buyers = np.flatnonzero(rng.random(n) < p).astype(np.int64)
        repeat = rng.geometric(0.55, size=len(buyers)).astype(np.int64)
        repeat += (self.referred[buyers] & (rng.random(len(buyers)) < 0.2)).astype(np.int64)
        member = np.repeat(buyers, repeat)
        soon = rng.random(len(member)) < 0.3
        at = np.where(
            soon,
            _after(rng, self.joined[member] + 1, self.hi, 2 * _US_PER_DAY),
            _between(rng, self.joined[member] + 1, self.hi),
        )
        by_time = np.argsort(at, kind="stable")
        member, at = member[by_time], at[by_time]
        total = len(member)
        lines = rng.choice(3, size=total, p=[0.6, 0.3, 0.1]).astype(np.int64) + 1
        purchase = np.repeat(np.arange(total, dtype=np.int64), lines)
        product = self._products_for(rng, self.primary[member[purchase]], 0.5)
        too_new = self.prod_created[product] > at[purchase]
        product[too_new] = self.prod_launch[product[too_new] % len(self.prod_launch)]
        keep = _unique_pairs(purchase, product, self.n_prod)
        purchase, product = purchase[keep], product[keep]
        qty = rng.choice(3, size=len(purchase), p=[0.8, 0.15, 0.05]).astype(np.int64) + 1
        campaign = self._in_campaign(at)[purchase] >= 0
        price = self.prod_price[product]
        unit = np.where(campaign, (price * 9) // 10, price)
        amount = np.bincount(purchase, weights=(qty * unit).astype(np.float64), minlength=total)
        self.pu_member = member
        self.pu_at = at
        self.pu_amount = np.rint(amount).astype(np.int64)
        self.pu_refunded = rng.random(total) < 0.05
        self.pu_channel = rng.choice(len(_PURCHASE_CHANNELS), size=total, p=_probs(_PURCHASE_CHANNEL_WEIGHTS))
        self.ln_purchase, self.ln_product, self.ln_qty, self.ln_unit = purchase, product, qty, unit
        self.n_purchase = total

    def _points(self) -> None:
        n, rng = self.n, _rng(self.entropy, 12)
        paid = np.bincount(self.pu_member, weights=np.where(self.pu_refunded, 0, self.pu_amount).astype(np.float64), minlength=n)
        posts = np.bincount(self.ct_author, minlength=n)
        comments = np.bincount(self.cm_member, minlength=n)
        age_days = (self.now - self.joined) / _US_PER_DAY
        checkins = rng.poisson(age_days * self.activity.clip(0.0, 5.0) / 8.0)
        points = 20 + paid // 100 + 5 * posts + 2 * comments + 30 * self.invitees + checkins
        self.points = points.astype(np.int64)
        self.level = np.clip(np.floor(np.log2(1.0 + self.points / 50.0)), 0, 10).astype(np.int64)

    # rows -----------------------------------------------------------------------------

    def display_name(self, i: int) -> str:
        style, a, b = int(self.name_style[i]), int(self.name_a[i]), int(self.name_b[i])
        surname = _SURNAMES[a % len(_SURNAMES)]
        given = _GIVEN[b % len(_GIVEN)]
        if style == 0:
            second = _GIVEN[(b // 64) % 45] if (a >> 12) % 3 else ""
            return surname + given[:1] + second if len(given) == 1 else surname + given
        if style == 1:
            return _NICK_PREFIX[a % len(_NICK_PREFIX)] + given[-1]
        if style == 2:
            return _ENGLISH[a % len(_ENGLISH)] + ("" if b % 3 else f"_{b % 100:02d}")
        if style == 3:
            return _CUTE[a % len(_CUTE)] + ("" if b % 2 else f"{(b >> 4) % 10}")
        return f"爱{INTERESTS[int(self.primary[i])]}的{_NICK_PREFIX[b % 2 + 1]}{given[-1]}"

    def member_rows(self, start: int, stop: int) -> list[Row]:
        idx = range(start, stop)
        ids = self.ids("mem", idx)
        codes = self.invite_codes(idx)
        rows: list[Row] = []
        for k, i in enumerate(idx):
            rows.append({
                "id": ids[k],
                "tenantId": self.tenant,
                "displayName": self.display_name(i),
                "joinedAt": from_micros(int(self.joined[i])),
                "channel": CHANNELS[int(self.channel[i])],
                "level": int(self.level[i]),
                "points": int(self.points[i]),
                "city": CITIES[int(self.city[i])],
                "phone": str(int(self.phone[i])),
                "wechatId": "wxid_" + _b36(int(self.wechat[i]), 12),
                "inviteCode": codes[k],
                "marketingConsent": bool(self.marketing[i]),
                "profilingConsent": bool(self.profiling[i]),
            })
        return rows

    def community_rows(self, start: int, stop: int) -> list[Row]:
        ids = self.ids("com", range(start, stop))
        return [
            {
                "id": ids[k],
                "tenantId": self.tenant,
                "name": self.comm_name[c],
                "kind": COMMUNITY_KINDS[int(self.comm_kind[c])],
                "channel": COMMUNITY_CHANNELS[int(self.comm_channel[c])],
                "createdAt": from_micros(int(self.comm_created[c])),
                "description": self.comm_desc[c],
            }
            for k, c in enumerate(range(start, stop))
        ]

    def tag_rows(self, start: int, stop: int) -> list[Row]:
        ids = self.ids("tag", range(start, stop))
        return [
            {"id": ids[k], "tenantId": self.tenant, "name": TAGS[t][0], "kind": TAGS[t][1]}
            for k, t in enumerate(range(start, stop))
        ]

    def product_rows(self, start: int, stop: int) -> list[Row]:
        ids = self.ids("prd", range(start, stop))
        return [
            {
                "id": ids[k],
                "tenantId": self.tenant,
                "sku": f"{self.sku_prefix}-{p + 1:04d}",
                "name": self.prod_name[p],
                "category": INTERESTS[int(self.prod_cat[p])],
                "priceAmount": int(self.prod_price[p]),
                "priceCurrency": "CNY",
                "createdAt": from_micros(int(self.prod_created[p])),
            }
            for k, p in enumerate(range(start, stop))
        ]

    def _fill(self, template: str, interest: int, city: int, product: int, number: int) -> str:
        return template.format(
            i=INTERESTS[interest], c=CITIES[city], p=self.prod_name[product].split(" ", 1)[-1], n=number
        )

    def content_rows(self, start: int, stop: int) -> list[Row]:
        ids = self.ids("cnt", range(start, stop))
        rows: list[Row] = []
        for k, c in enumerate(range(start, stop)):
            author = int(self.ct_author[c])
            kind = int(self.ct_kind[c])
            tpl = int(self.ct_tpl[c])
            interest, city, product = int(self.primary[author]), int(self.city[author]), int(self.ct_product[c])
            titles = _TITLES[kind]
            title = self._fill(titles[tpl % len(titles)], interest, city, product, 2 + (tpl >> 8) % 60)
            body = "".join(
                self._fill(_BODIES[(tpl >> s) % len(_BODIES)], interest, city, product, 0) for s in (3, 11, 19)[: 1 + (tpl >> 27) % 3]
            )
            rows.append({
                "id": ids[k],
                "tenantId": self.tenant,
                "kind": CONTENT_KINDS[kind],
                "title": title,
                "body": body,
                "createdAt": from_micros(int(self.ct_created[c])),
            })
        return rows

    def comment_rows(self, start: int, stop: int) -> list[Row]:
        ids = self.ids("cmt", range(start, stop))
        rows: list[Row] = []
        for k, j in enumerate(range(start, stop)):
            member = int(self.cm_member[j])
            tpl = int(self.cm_tpl[j])
            body = self._fill(_COMMENTS[tpl % len(_COMMENTS)], int(self.primary[member]), int(self.city[member]), 0, 0)
            rows.append({"id": ids[k], "tenantId": self.tenant, "body": body, "createdAt": from_micros(int(self.cm_at[j]))})
        return rows

    def purchase_rows(self, start: int, stop: int) -> list[Row]:
        ids = self.ids("pur", range(start, stop))
        return [
            {
                "id": ids[k],
                "tenantId": self.tenant,
                "amount": int(self.pu_amount[p]),
                "currency": "CNY",
                "at": from_micros(int(self.pu_at[p])),
                "channel": _PURCHASE_CHANNELS[int(self.pu_channel[p])],
                "status": "refunded" if self.pu_refunded[p] else "paid",
                "idempotencyKey": f"demo-{self.seed}-{p}",
                "requestHash": "demo",
            }
            for k, p in enumerate(range(start, stop))
        ]

    def referral_rows(self, start: int, stop: int) -> list[Row]:
        invitee = self.ref_invitee[start:stop].tolist()
        inviter = self.ref_inviter[start:stop].tolist()
        a_ids, b_ids = self.ids("mem", inviter), self.ids("mem", invitee)
        codes = self.invite_codes(inviter)
        camp = self.ref_campaign[start:stop].tolist()
        chan = self.ref_channel[start:stop].tolist()
        rows: list[Row] = []
        for k in range(len(invitee)):
            row: Row = {
                "a": a_ids[k],
                "b": b_ids[k],
                "at": from_micros(int(self.joined[invitee[k]])),
                "code": codes[k],
                "channel": _SHARE_CHANNELS[chan[k]],
                "campaignId": f"cmp_{self.token}{camp[k]:02d}" if camp[k] >= 0 else None,
            }
            rows.append(row)
        return rows

    def edge_rows(self, a_prefix: str, a: I64, b_prefix: str, b: I64, start: int, stop: int, **props: _Column) -> list[Row]:
        """Rows ``{"a": id, "b": id, **props}`` for the relationships ``start:stop``.

        A property column is an array of numbers, :class:`_Times` for datetimes,
        :class:`_Enum` for strings from a closed list, or :class:`_OwnIds` for the id of
        the row's own position (a comment's id on ``COMMENTED``).
        """
        a_ids = self.ids(a_prefix, a[start:stop].tolist())
        b_ids = self.ids(b_prefix, b[start:stop].tolist())
        columns: list[tuple[str, list[Any]]] = []
        for key, value in props.items():
            if isinstance(value, _Times):
                columns.append((key, [from_micros(v) for v in value.us[start:stop].tolist()]))
            elif isinstance(value, _Enum):
                names = value.names
                columns.append((key, [names[v] for v in value.idx[start:stop].tolist()]))
            elif isinstance(value, _OwnIds):
                columns.append((key, self.ids(value.prefix, range(start, stop))))
            else:
                columns.append((key, value[start:stop].tolist()))
        rows: list[Row] = []
        for k in range(len(a_ids)):
            row: Row = {"a": a_ids[k], "b": b_ids[k]}
            for key, col in columns:
                row[key] = col[k]
            rows.append(row)
        return rows


# --------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------


def _default_now() -> datetime:
    today = datetime.now(UTC)
    return today.replace(hour=0, minute=0, second=0, microsecond=0)


def generate(*, tenant: str, members: int, seed: int, now: datetime | None = None) -> DemoData:
    """Generate a synthetic community for *tenant* without touching the graph.

    Parameters
    ----------
    tenant:
        The tenant id written on every node (``tenantId``); it also salts every node id, so
        two tenants never share ids.
    members:
        How many members to create (at least 1). Communities, content, products and
        purchases scale with it.
    seed:
        Any integer; the same ``(tenant, members, seed, now)`` always gives the same rows.
    now:
        The end of the generated history (UTC); default: today's midnight UTC, so the data
        is the same all day.

    Returns
    -------
    DemoData
        The planned counts and the stages (statements and rows) that write the community.
    """
    if members < 1:
        raise ValueError("members must be at least 1")
    at = _default_now() if now is None else now
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    at = at.astimezone(UTC)
    w = _World(tenant, members, seed, at)

    def lines_of(start: int, stop: int) -> list[Row]:
        return w.edge_rows("pur", w.ln_purchase, "prd", w.ln_product, start, stop, qty=w.ln_qty, unitPrice=w.ln_unit)

    roles = _Enum(MEMBERSHIP_ROLES, w.ms_role)
    sources = _Enum(INTEREST_SOURCES, w.int_source)
    seq_contents = np.arange(w.n_content, dtype=np.int64)
    seq_comments = np.arange(len(w.cm_member), dtype=np.int64)
    seq_purchases = np.arange(w.n_purchase, dtype=np.int64)
    stages = (
        Stage("members", CREATE_MEMBERS, w.n, w.member_rows, "members"),
        Stage("communities", CREATE_COMMUNITIES, w.n_comm, w.community_rows, "communities"),
        Stage("tags", CREATE_TAGS, len(TAGS), w.tag_rows, "tags"),
        Stage("products", CREATE_PRODUCTS, w.n_prod, w.product_rows, "products"),
        Stage("contents", CREATE_CONTENTS, w.n_content, w.content_rows, "contents"),
        Stage("comments", CREATE_COMMENTS, len(w.cm_member), w.comment_rows, "comments"),
        Stage("purchases", CREATE_PURCHASES, w.n_purchase, w.purchase_rows, "purchases"),
        Stage("referrals", CREATE_REFERRALS, len(w.ref_invitee), w.referral_rows, "referrals"),
        Stage(
            "follows", CREATE_FOLLOWS, len(w.fo_src),
            lambda s, e: w.edge_rows("mem", w.fo_src, "mem", w.fo_dst, s, e, at=_Times(w.fo_at)),
            "follows",
        ),
        Stage(
            "memberships", CREATE_MEMBERSHIPS, len(w.ms_member),
            lambda s, e: w.edge_rows(
                "mem", w.ms_member, "com", w.ms_comm, s, e, role=roles, joinedAt=_Times(w.ms_joined)
            ),
            "memberships",
        ),
        Stage(
            "interests", CREATE_INTERESTS, len(w.int_member),
            lambda s, e: w.edge_rows(
                "mem", w.int_member, "tag", w.int_tag, s, e, weight=w.int_weight, source=sources
            ),
        ),
        Stage(
            "posted", CREATE_POSTED, w.n_content,
            lambda s, e: w.edge_rows(
                "mem", w.ct_author, "cnt", seq_contents, s, e, at=_Times(w.ct_created)
            ),
        ),
        Stage(
            "content_in", CREATE_CONTENT_IN, w.n_content,
            lambda s, e: w.edge_rows("cnt", seq_contents, "com", w.ct_comm, s, e),
        ),
        Stage(
            "about", CREATE_ABOUT, len(w.ab_content),
            lambda s, e: w.edge_rows("cnt", w.ab_content, "tag", w.ab_tag, s, e),
        ),
        Stage(
            "likes", CREATE_LIKES, len(w.lk_member),
            lambda s, e: w.edge_rows("mem", w.lk_member, "cnt", w.lk_content, s, e, at=_Times(w.lk_at)),
            "likes",
        ),
        Stage(
            "favorites", CREATE_FAVORITES, len(w.fv_member),
            lambda s, e: w.edge_rows("mem", w.fv_member, "cnt", w.fv_content, s, e, at=_Times(w.fv_at)),
            "favorites",
        ),
        Stage(
            "shares", CREATE_SHARES, len(w.sh_member),
            lambda s, e: w.edge_rows(
                "mem", w.sh_member, "cnt", w.sh_content, s, e,
                at=_Times(w.sh_at), count=w.sh_count, lastAt=_Times(w.sh_last),
            ),
            "shares",
        ),
        Stage(
            "wrote", CREATE_WROTE, len(w.cm_member),
            lambda s, e: w.edge_rows("mem", w.cm_member, "cmt", seq_comments, s, e),
        ),
        Stage(
            "comment_on", CREATE_COMMENT_ON, len(w.cm_member),
            lambda s, e: w.edge_rows("cmt", seq_comments, "cnt", w.cm_content, s, e),
        ),
        Stage(
            "commented", CREATE_COMMENTED, len(w.cm_member),
            lambda s, e: w.edge_rows(
                "mem", w.cm_member, "cnt", w.cm_content, s, e, at=_Times(w.cm_at), commentId=_OwnIds("cmt")
            ),
        ),
        Stage(
            "placed", CREATE_PLACED, w.n_purchase,
            lambda s, e: w.edge_rows(
                "mem", w.pu_member, "pur", seq_purchases, s, e, at=_Times(w.pu_at)
            ),
        ),
        Stage("purchase_of", CREATE_PURCHASE_OF, len(w.ln_purchase), lines_of),
    )
    summary = DemoSummary(**{st.summary_field: st.total for st in stages if st.summary_field is not None})
    return DemoData(
        tenant=tenant,
        seed=seed,
        now=at,
        tenant_name=f"{w.brand}（演示）",
        tenant_created_at=from_micros(w.start - 45 * _US_PER_DAY),
        summary=summary,
        stages=stages,
    )


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


async def has_members(graph: GraphClient, *, tenant: str) -> bool:
    """Whether *tenant* already has at least one member in the graph."""
    return await graph.read_one(HAS_MEMBERS, tenant=tenant) is not None


async def load_demo(
    graph: GraphClient,
    *,
    tenant: str,
    members: int,
    seed: int,
    progress: Callable[[str, int, int], None] | None = None,
    batch_size: int = 5000,
) -> DemoSummary:
    """Generate a community (see :func:`generate`) and write it to the graph.

    Parameters
    ----------
    graph:
        The client; every batch runs in its own managed write transaction.
    tenant, members, seed:
        As for :func:`generate` (``now`` is today's midnight UTC).
    progress:
        Called as ``progress(stage, done, total)`` when a stage starts and after each batch.
    batch_size:
        Rows per ``UNWIND`` batch (and per transaction).

    Returns
    -------
    DemoSummary
        The counts the server reported writing.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    data = generate(tenant=tenant, members=members, seed=seed)
    return await load_generated(graph, data, progress=progress, batch_size=batch_size)


async def load_generated(
    graph: GraphClient,
    data: DemoData,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    batch_size: int = 5000,
) -> DemoSummary:
    """Write a community made by :func:`generate` (see :func:`load_demo`, which calls this)."""
    tenant = data.tenant

    async def tenant_work(tx: Tx) -> None:
        await graph.run(tx, MERGE_TENANT, tenant=tenant, name=data.tenant_name, createdAt=data.tenant_created_at)

    await graph.write(tenant_work)
    written: dict[str, int] = {}
    for stage in data.stages:
        done = 0
        if progress is not None:
            progress(stage.name, 0, stage.total)
        for batch in stage.batches(batch_size):
            count = await _write_batch(graph, stage.query, batch, tenant)
            done += len(batch)
            if stage.summary_field is not None:
                written[stage.summary_field] = written.get(stage.summary_field, 0) + count
            if progress is not None:
                progress(stage.name, done, stage.total)
        if stage.summary_field is not None:
            written.setdefault(stage.summary_field, 0)
    return DemoSummary(**written)


async def _write_batch(graph: GraphClient, query: LiteralString, rows: list[Row], tenant: str) -> int:
    async def work(tx: Tx) -> int:
        row = await graph.run_one(tx, query, rows=rows, tenant=tenant)
        return int(row["n"]) if row is not None else 0

    return await graph.write(work)
