"""The statement page's languages: Simplified Chinese and English.

The language is ``?lang=`` if it names one we have, else the best of ``Accept-Language`` (by
q-value; any ``zh`` tag is served Simplified Chinese, the only Chinese we write), else English.
Numbers and dates are formatted with Babel's CLDR data for the locale (digit grouping, decimal
sign, "10月5日" / "Oct 5"); the page's own sentences are the small table below, one entry per
language, so a missing translation fails the test that renders both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from babel import Locale
from babel.dates import format_date, format_skeleton
from babel.numbers import format_decimal

ZH, EN = "zh-CN", "en"
LANGUAGES = (ZH, EN)

MESSAGES: dict[str, dict[str, str]] = {
    EN: {
        "title": "Statement, {period}",
        "subtitle": "{dwelling} in {community} · {people} people",
        "language": "Language",
        "no_data": "No readings in this period.",
        "net": "Net emissions",
        "per_person": "Per person",
        "clean_energy": "Clean energy",
        "credits": "Credits earned",
        "change": "vs previous period",
        "no_previous": "no data before",
        "electricity_total": "Electricity",
        "daily": "{utility} per day ({unit})",
        "weekly": "{utility} per week ({unit})",
        "week_of": "week of {date}",
        "net_weekly": "Net emissions per week (kg CO2e)",
        "weekly_table": "Weekly use",
        "week": "Week",
        "net_column": "Net CO2e",
        "electricity_ranking": "Electricity ranking: {peers}",
        "emissions_ranking": "Emissions ranking: {peers}",
        "rank_of": "rank {rank} of {count}",
        "no_rank": "not ranked",
        "most": "most",
        "least": "least",
        "highest": "highest emissions",
        "lowest": "lowest emissions",
        "electricity_mine": "{value} kWh per person; peer average {average} kWh per person.",
        "electricity_mine_only": "{value} kWh per person.",
        "peer_average": "Peer average: {per_home} per {home}, {per_person} per person.",
        "withheld": "Peer averages withheld: the peers are too few people.",
        "room": "room",
        "home": "home",
        "peers_dorm": "dorm rooms of {community}",
        "peers_home": "homes of {community}",
        "kg": "{value} kg",
    },
    ZH: {
        "title": "账单：{period}",
        "subtitle": "{community} · {dwelling} · {people} 人",
        "language": "语言",
        "no_data": "本期没有读数。",
        "net": "净排放",
        "per_person": "人均",
        "clean_energy": "清洁能源抵消",
        "credits": "获得积分",
        "change": "较上期",
        "no_previous": "上期无数据",
        "electricity_total": "用电量",
        "daily": "每日{utility}（{unit}）",
        "weekly": "每周{utility}（{unit}）",
        "week_of": "{date} 起一周",
        "net_weekly": "每周净排放（千克二氧化碳当量）",
        "weekly_table": "每周用量",
        "week": "周",
        "net_column": "净排放",
        "electricity_ranking": "用电排名：{peers}",
        "emissions_ranking": "排放排名：{peers}",
        "rank_of": "第 {rank} 名，共 {count} 个",
        "no_rank": "未排名",
        "most": "最多",
        "least": "最少",
        "highest": "排放最高",
        "lowest": "排放最低",
        "electricity_mine": "人均 {value} kWh；同类平均人均 {average} kWh。",
        "electricity_mine_only": "人均 {value} kWh。",
        "peer_average": "同类平均：每{home} {per_home}，人均 {per_person}。",
        "withheld": "同类人数过少，不显示平均值。",
        "room": "间宿舍",
        "home": "户",
        "peers_dorm": "{community}的全部宿舍",
        "peers_home": "{community}的全部住户",
        "kg": "{value} 千克",
    },
}

UTILITIES: dict[str, dict[str, str]] = {
    EN: {
        "ELECTRICITY": "Electricity",
        "HEAT": "Heat",
        "NATURAL_GAS": "Natural gas",
        "GASOLINE": "Gasoline",
        "DIESEL": "Diesel",
        "WATER": "Water",
        "WASTEWATER": "Wastewater",
        "ROOFTOP_SOLAR": "Rooftop solar",
        "COMMUNITY_SOLAR": "Community solar",
        "COMMUNITY_WIND": "Community wind",
        "GREEN_CERTIFICATE": "Green certificates",
    },
    ZH: {
        "ELECTRICITY": "用电",
        "HEAT": "供热",
        "NATURAL_GAS": "天然气",
        "GASOLINE": "汽油",
        "DIESEL": "柴油",
        "WATER": "用水",
        "WASTEWATER": "污水",
        "ROOFTOP_SOLAR": "屋顶光伏",
        "COMMUNITY_SOLAR": "社区光伏",
        "COMMUNITY_WIND": "社区风电",
        "GREEN_CERTIFICATE": "绿证",
    },
}

DWELLINGS: dict[str, dict[str, str]] = {
    EN: {},  # the enum's own words: "dorm room", "apartment"
    ZH: {
        "DORM_ROOM": "宿舍",
        "APARTMENT": "公寓",
        "HOUSE": "住宅",
        "OTHER": "其他",
    },
}

# Units as printed (the API's "m3" is a plain-ASCII code).
UNITS = {"m3": "m³"}


def choose(query_lang: str | None, accept_language: str | None) -> str:
    """``?lang=`` first, then Accept-Language by q-value, then English."""
    for tag in ([query_lang] if query_lang else []) + _accepted(accept_language or ""):
        found = _match(tag)
        if found is not None:
            return found
    return EN


def _accepted(header: str) -> list[str]:
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if tag and q > 0:
            ranked.append((-q, n, tag))
    return [tag for _, _, tag in sorted(ranked)]


def _match(tag: str) -> str | None:
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    return {"zh": ZH, "en": EN}.get(primary)


@dataclass(frozen=True)
class Formatter:
    """Messages, numbers and dates of one language."""

    lang: str

    @property
    def locale(self) -> Locale:
        return Locale.parse(self.lang, sep="-")

    def t(self, key: str, **values: object) -> str:
        return MESSAGES[self.lang][key].format(**values)

    def number(self, value: Decimal | float | int, digits: int = 1) -> str:
        pattern = "#,##0" + ("." + "#" * digits if digits else "")
        return format_decimal(value, format=pattern, locale=self.locale)

    def kg(self, grams: int | None) -> str:
        if grams is None:
            return "–"
        return self.t("kg", value=self.number(Decimal(grams) / 1000, 1))

    def quantity(self, text: str | None, digits: int = 1) -> str:
        """An API quantity (exact decimal string), rounded for reading."""
        if text is None:
            return "–"
        return self.number(Decimal(text), digits)

    def day(self, value: date) -> str:
        """Short day: "Oct 5" / "10月5日"."""
        return format_skeleton("MMMd", value, locale=self.locale)

    def short_day(self, value: date) -> str:
        """Axis label: "10/5" in both (CLDR's numeric month/day)."""
        return format_skeleton("Md", value, locale=self.locale)

    def long_day(self, value: date) -> str:
        return format_date(value, "medium", locale=self.locale)

    def utility(self, activity_type: str) -> str:
        return UTILITIES[self.lang].get(activity_type, activity_type.lower().replace("_", " "))

    def unit(self, unit: str) -> str:
        return UNITS.get(unit, unit)

    def dwelling(self, dwelling_type: str) -> str:
        return DWELLINGS[self.lang].get(dwelling_type, dwelling_type.replace("_", " ").lower())
