"""The fixed facts of the demo chain: its cities and stores, its catalogue, names and numbers.

Everything random about the demo retailer is drawn from these tables, so that a reader can
see at a glance what the generated files may contain.
"""

from __future__ import annotations

from typing import NamedTuple


class District(NamedTuple):
    """A district of a city where the chain has one store, with its rough centre."""

    name: str
    latitude: float
    longitude: float


class City(NamedTuple):
    """A city of the chain: the prefix of its store codes, its districts."""

    name: str
    code: str
    districts: tuple[District, ...]


CITIES: tuple[City, ...] = (
    City(
        "上海",
        "SH",
        (
            District("徐汇", 31.188, 121.437),
            District("静安", 31.229, 121.448),
            District("浦东", 31.221, 121.544),
            District("长宁", 31.220, 121.424),
            District("杨浦", 31.259, 121.526),
            District("闵行", 31.113, 121.382),
            District("普陀", 31.249, 121.397),
        ),
    ),
    City(
        "北京",
        "BJ",
        (
            District("朝阳", 39.921, 116.443),
            District("海淀", 39.959, 116.298),
            District("东城", 39.928, 116.416),
            District("西城", 39.912, 116.366),
            District("丰台", 39.858, 116.287),
        ),
    ),
    City(
        "杭州",
        "HZ",
        (
            District("西湖", 30.259, 120.130),
            District("上城", 30.242, 120.169),
            District("拱墅", 30.319, 120.142),
            District("滨江", 30.208, 120.211),
            District("余杭", 30.419, 120.299),
        ),
    ),
    City(
        "南京",
        "NJ",
        (
            District("鼓楼", 32.066, 118.770),
            District("玄武", 32.048, 118.797),
            District("建邺", 32.003, 118.731),
            District("秦淮", 32.034, 118.794),
        ),
    ),
    City(
        "苏州",
        "SZ",
        (
            District("姑苏", 31.311, 120.617),
            District("工业园区", 31.317, 120.719),
            District("吴中", 31.262, 120.632),
            District("相城", 31.369, 120.642),
        ),
    ),
    City(
        "成都",
        "CD",
        (
            District("锦江", 30.657, 104.083),
            District("武侯", 30.642, 104.043),
            District("高新", 30.585, 104.063),
            District("青羊", 30.674, 104.062),
            District("成华", 30.660, 104.102),
        ),
    ),
)


class StoreType(NamedTuple):
    """A kind of store: how many of the chain's stores are of it, its hours, its shoppers.

    `habit_mix` gives, for the members whose home store is of this type, the share who shop
    in the morning, at lunch, after school and in the evening (the order of HABIT_HOURS).
    """

    name: str
    stores: int
    opens_hour: float  # hours after midnight, local time
    closes_hour: float  # hours after midnight, local time
    habit_mix: tuple[float, float, float, float]


STORE_TYPES: tuple[StoreType, ...] = (
    StoreType("社区店", 13, 7.0, 22.0, (0.38, 0.10, 0.12, 0.40)),
    StoreType("写字楼店", 6, 7.5, 21.0, (0.18, 0.52, 0.05, 0.25)),
    StoreType("学区店", 5, 7.0, 21.5, (0.22, 0.08, 0.45, 0.25)),
    StoreType("商场店", 6, 10.0, 22.0, (0.00, 0.25, 0.30, 0.45)),
)

# Centres of the four shopping habits, in hours after midnight (local time).
HABIT_HOURS: tuple[float, float, float, float] = (8.2, 12.3, 16.6, 19.2)


class Category(NamedTuple):
    """A product category and its share of the lines members buy outside their favourites."""

    name: str
    code: str
    popularity: float


CATEGORIES: tuple[Category, ...] = (
    Category("水果", "FR", 0.20),
    Category("热带水果", "TF", 0.08),
    Category("生鲜", "FS", 0.17),
    Category("零食", "SN", 0.11),
    Category("酒水", "DR", 0.07),
    Category("母婴", "BB", 0.07),
    Category("美妆", "BT", 0.07),
    Category("个护", "PC", 0.08),
    Category("宠物", "PT", 0.06),
    Category("服饰", "AP", 0.05),
    Category("数码", "DG", 0.04),
)

# Categories whose lines are often bought two or three at a time.
MULTI_UNIT_CATEGORIES = frozenset({"水果", "热带水果", "生鲜", "零食", "酒水"})


class Item(NamedTuple):
    """A product: name, category, shelf price in yuan, and the days one pack lasts."""

    name: str
    category: str
    price: float  # yuan
    pack_size_days: int | None


PRODUCTS: tuple[Item, ...] = (
    Item("红富士苹果 5斤装", "水果", 39.9, None),
    Item("砀山酥梨 3斤装", "水果", 19.9, None),
    Item("赣南脐橙 5斤装", "水果", 35.8, None),
    Item("阳光玫瑰葡萄 1kg", "水果", 49.9, None),
    Item("丹东99草莓 500g", "水果", 39.9, None),
    Item("库尔勒香梨 2斤装", "水果", 22.8, None),
    Item("麒麟西瓜 1个", "水果", 29.9, None),
    Item("蓝莓 125g×2盒", "水果", 29.9, None),
    Item("广西砂糖橘 3斤装", "水果", 19.8, None),
    Item("徐香猕猴桃 12粒", "水果", 32.9, None),
    Item("无锡水蜜桃 6粒", "水果", 36.0, None),
    Item("金枕榴莲 约3kg", "热带水果", 168.0, None),
    Item("泰国山竹 1kg", "热带水果", 59.9, None),
    Item("海南贵妃芒 3斤装", "热带水果", 29.9, None),
    Item("菲律宾香蕉 1.5kg", "热带水果", 15.9, None),
    Item("越南红心火龙果 2个", "热带水果", 19.9, None),
    Item("海南椰青 2个", "热带水果", 19.8, None),
    Item("墨西哥牛油果 4个", "热带水果", 29.9, None),
    Item("泰国红毛丹 500g", "热带水果", 26.8, None),
    Item("菠萝蜜果肉 500g", "热带水果", 19.9, None),
    Item("鲜牛奶 950ml", "生鲜", 16.8, 4),
    Item("散养土鸡蛋 30枚", "生鲜", 29.9, 10),
    Item("黑猪五花肉 500g", "生鲜", 32.8, None),
    Item("鲜活基围虾 500g", "生鲜", 59.9, None),
    Item("西兰花 500g", "生鲜", 6.9, None),
    Item("有机菠菜 300g", "生鲜", 5.9, None),
    Item("冷鲜鸡腿 1kg", "生鲜", 26.8, None),
    Item("挪威三文鱼切片 200g", "生鲜", 49.9, None),
    Item("五常大米 5kg", "生鲜", 49.9, 30),
    Item("内酯豆腐 400g", "生鲜", 3.5, None),
    Item("每日坚果 30袋", "零食", 99.0, 30),
    Item("原味薯片 3连包", "零食", 19.9, None),
    Item("风干牛肉干 200g", "零食", 45.9, None),
    Item("芒果干 250g", "零食", 25.9, None),
    Item("黑巧克力礼盒 300g", "零食", 89.0, None),
    Item("海苔脆片 10包", "零食", 15.9, None),
    Item("苏打饼干 400g", "零食", 12.9, None),
    Item("速溶咖啡 30条", "零食", 59.0, 30),
    Item("饮用天然水 550ml×24", "酒水", 29.9, 10),
    Item("精酿啤酒 500ml×6", "酒水", 59.0, None),
    Item("干红葡萄酒 750ml", "酒水", 168.0, None),
    Item("浓香型白酒 500ml", "酒水", 399.0, None),
    Item("无糖气泡水 480ml×15", "酒水", 55.0, None),
    Item("NFC橙汁 1L", "酒水", 16.9, None),
    Item("绍兴黄酒 2.5L", "酒水", 45.0, None),
    Item("婴儿纸尿裤 L码 120片", "母婴", 229.0, 24),
    Item("婴儿配方奶粉 3段 800g", "母婴", 268.0, 16),
    Item("婴儿湿巾 80抽×6包", "母婴", 39.9, 20),
    Item("宝宝营养米粉 225g", "母婴", 59.0, 15),
    Item("婴儿洗衣液 1L", "母婴", 39.9, 45),
    Item("儿童益生菌 30袋", "母婴", 128.0, 30),
    Item("婴儿连体衣 纯棉", "母婴", 89.0, None),
    Item("宽口径玻璃奶瓶 240ml", "母婴", 129.0, None),
    Item("补水保湿面膜 10片", "美妆", 99.0, 20),
    Item("氨基酸洗面奶 120g", "美妆", 69.0, 60),
    Item("玻尿酸精华液 30ml", "美妆", 239.0, 60),
    Item("清爽防晒霜 50ml", "美妆", 128.0, 45),
    Item("丝绒哑光口红", "美妆", 199.0, None),
    Item("温和卸妆水 400ml", "美妆", 89.0, 60),
    Item("持妆粉底液 30ml", "美妆", 268.0, None),
    Item("去屑洗发水 750ml", "个护", 59.9, 60),
    Item("香氛沐浴露 1L", "个护", 49.9, 60),
    Item("美白牙膏 120g×3", "个护", 39.9, 45),
    Item("电动牙刷替换刷头 4支", "个护", 99.0, 90),
    Item("深层洁净洗衣液 3kg", "个护", 49.9, 45),
    Item("日用卫生巾 10片×4包", "个护", 45.9, 28),
    Item("原木抽纸 24包", "个护", 49.9, 30),
    Item("成猫全价猫粮 2kg", "宠物", 139.0, 30),
    Item("幼犬狗粮 5kg", "宠物", 189.0, 40),
    Item("豆腐猫砂 6L×2", "宠物", 59.9, 20),
    Item("金枪鱼猫罐头 85g×12", "宠物", 69.0, 14),
    Item("冻干鸡胸肉零食 100g", "宠物", 49.9, None),
    Item("宠物体内驱虫药 3粒", "宠物", 129.0, 90),
    Item("瓦楞纸猫抓板", "宠物", 29.9, None),
    Item("纯棉圆领T恤", "服饰", 79.0, None),
    Item("直筒休闲裤", "服饰", 159.0, None),
    Item("运动短袜 5双装", "服饰", 39.9, None),
    Item("加绒连帽卫衣", "服饰", 199.0, None),
    Item("轻薄羽绒服", "服饰", 499.0, None),
    Item("冰丝防晒衣", "服饰", 129.0, None),
    Item("经典帆布鞋", "服饰", 169.0, None),
    Item("真无线蓝牙耳机", "数码", 299.0, None),
    Item("20W快充充电器", "数码", 69.0, None),
    Item("10000mAh充电宝", "数码", 129.0, None),
    Item("编织快充数据线 1m", "数码", 29.9, None),
    Item("智能运动手环", "数码", 229.0, None),
    Item("磨砂手机壳", "数码", 39.0, None),
    Item("128G高速U盘", "数码", 59.9, None),
    Item("静音无线鼠标", "数码", 89.0, None),
)


class Companion(NamedTuple):
    """A product often put in the same basket as another: the pattern recommendations find."""

    product: str
    companion: str
    share: float  # of the product's lines that bring the companion along


COMPANIONS: tuple[Companion, ...] = (
    Companion("婴儿纸尿裤 L码 120片", "婴儿配方奶粉 3段 800g", 0.30),
    Companion("婴儿配方奶粉 3段 800g", "宽口径玻璃奶瓶 240ml", 0.20),
    Companion("精酿啤酒 500ml×6", "原味薯片 3连包", 0.40),
    Companion("成猫全价猫粮 2kg", "冻干鸡胸肉零食 100g", 0.35),
    Companion("10000mAh充电宝", "编织快充数据线 1m", 0.45),
    Companion("鲜活基围虾 500g", "绍兴黄酒 2.5L", 0.30),
    Companion("清爽防晒霜 50ml", "冰丝防晒衣", 0.30),
)

# A consumable is re-bought on a schedule when one pack lasts at least this long.
REPLENISH_MIN_PACK_DAYS = 14  # days

# The most common surnames of mainland China with their rough weights.
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.8), ("刘", 5.4), ("陈", 4.6), ("杨", 3.1),
    ("黄", 2.4), ("赵", 2.3), ("吴", 2.0), ("周", 1.9), ("徐", 1.5), ("孙", 1.5),
    ("马", 1.3), ("朱", 1.3), ("胡", 1.2), ("郭", 1.2), ("何", 1.1), ("林", 1.0),
    ("高", 1.0), ("罗", 0.9), ("郑", 0.9), ("梁", 0.8), ("谢", 0.7), ("宋", 0.6),
    ("唐", 0.6), ("许", 0.6), ("韩", 0.5), ("冯", 0.5), ("邓", 0.5), ("曹", 0.5),
    ("彭", 0.5), ("曾", 0.5), ("肖", 0.5), ("田", 0.4), ("董", 0.4), ("潘", 0.4),
    ("袁", 0.4), ("蔡", 0.4), ("蒋", 0.4), ("余", 0.4), ("于", 0.4), ("杜", 0.4),
    ("叶", 0.4), ("程", 0.3), ("魏", 0.3), ("苏", 0.3), ("吕", 0.3), ("丁", 0.3),
    ("沈", 0.3), ("欧阳", 0.05), ("上官", 0.02),
)  # fmt: skip

# Characters common in given names, by gender.
MALE_NAME_CHARACTERS = "伟强磊军洋勇杰涛明超辉刚平鹏浩宇俊峰建国志文博斌凯晨浩然子轩宏亮"
FEMALE_NAME_CHARACTERS = "芳娜敏静丽艳娟霞婷雪慧琳颖洁佳怡欣悦梦瑶思雨晓萱诗涵梓琪婉清"

# Mobile number prefixes (the first three digits) of the three carriers, weighted by use.
MOBILE_PREFIXES: tuple[tuple[str, float], ...] = (
    ("130", 2.0), ("131", 2.0), ("132", 2.0), ("133", 1.5), ("134", 2.0), ("135", 4.0),
    ("136", 3.5), ("137", 3.0), ("138", 5.0), ("139", 5.0), ("150", 2.5), ("151", 2.5),
    ("152", 2.0), ("153", 1.2), ("155", 1.5), ("156", 1.5), ("157", 1.0), ("158", 2.5),
    ("159", 2.5), ("166", 0.8), ("173", 0.8), ("175", 0.5), ("176", 0.8), ("177", 0.8),
    ("178", 0.8), ("180", 1.5), ("181", 1.5), ("182", 1.5), ("183", 1.2), ("185", 1.2),
    ("186", 2.0), ("187", 1.5), ("188", 1.5), ("189", 1.8), ("191", 0.6), ("198", 0.8),
    ("199", 0.8),
)  # fmt: skip

# Fixed-line area codes of the chain's cities, for the landlines a dirty export contains.
AREA_CODES: tuple[str, ...] = ("021", "010", "0571", "025", "0512", "028")
