"""The starting taxonomy. Editors change it in admin; this only fills an empty table."""

from django.db import migrations

CATEGORIES = [
    (
        "AI",
        "ai",
        "🤖",
        "Models, research and products in artificial intelligence.",
        "ai, model, models, language model, machine learning, neural, open-weight, chatbot, ki, 模型, 人工智能",
    ),
    (
        "Business",
        "business",
        "💰",
        "Companies, markets, funding and deals.",
        "funding, shares, investors, revenue, startup, series, valuation, market, profit, 融资, 投资",
    ),
    (
        "Science",
        "science",
        "🔬",
        "Research and discoveries.",
        "research, scientists, study, university, experiment, physics, biology, forschung, 研究",
    ),
    (
        "Policy",
        "policy",
        "🏛️",
        "Law, regulation and government.",
        "law, council, regulation, ban, vote, government, court, parliament, gesetz, 政策, 监管",
    ),
    (
        "Security",
        "security",
        "🔒",
        "Breaches, outages, vulnerabilities and defence.",
        "outage, breach, vulnerability, attack, hacker, security, incident, ausfall, 故障, 安全",
    ),
]
AUDIENCES = [
    (
        "Developers",
        "developers",
        "People who write and ship software.",
        "developer, developers, code, coding, api, open-source, open source, sdk, github, programming, "
        "benchmark, software, entwickler, programmierer, 开发者, 代码, 开源, 编程",
    ),
    (
        "Founders & Executives",
        "executives",
        "People who run companies and set strategy.",
        "ceo, cfo, strategy, revenue, market, competitor, customers, pricing, acquisition, startup, "
        "unternehmen, geschäftsführer, kunden, 首席执行官, 企业, 市场, 客户",
    ),
    (
        "Investors",
        "investors",
        "People who allocate capital.",
        "funding, raise, raised, series, valuation, shares, stock, investors, ipo, earnings, fund, "
        "investoren, finanzierung, aktie, 融资, 投资者, 股价, 估值",
    ),
    (
        "Policy Makers",
        "policy",
        "People who write or enforce rules.",
        "law, regulation, council, ban, government, regulator, compliance, privacy, vote, mayor, "
        "gesetz, regulierung, regierung, verbot, 监管, 政府, 法规, 禁令",
    ),
    (
        "Researchers",
        "researchers",
        "People who run studies and experiments.",
        "research, researchers, study, paper, experiment, university, scientists, dataset, "
        "forschung, forscher, studie, universität, experiment, 研究, 研究人员, 大学, 论文",
    ),
    (
        "Creators & Designers",
        "creators",
        "People who make media, art and products.",
        "film, music, artist, creator, creators, design, designers, studio, content, "
        "künstler, gestalter, 创作者, 设计师, 艺术",
    ),
    (
        "Security & Ops Teams",
        "security-ops",
        "People who keep systems running and safe.",
        "outage, breach, vulnerability, attack, incident, downtime, configuration, security, "
        "post-mortem, ausfall, sicherheit, störung, 故障, 宕机, 安全, 中断",
    ),
]


def forwards(apps, schema_editor):
    Category = apps.get_model("aggregator", "Category")
    AudienceTag = apps.get_model("aggregator", "AudienceTag")
    for position, (name, slug, icon, description, keywords) in enumerate(CATEGORIES):
        Category.objects.get_or_create(
            slug=slug,
            defaults={
                "name": name,
                "icon": icon,
                "description": description,
                "keywords": keywords,
                "position": position,
            },
        )
    for position, (name, slug, description, keywords) in enumerate(AUDIENCES):
        AudienceTag.objects.get_or_create(
            slug=slug,
            defaults={"name": name, "description": description, "keywords": keywords, "position": position},
        )


class Migration(migrations.Migration):
    dependencies = [("aggregator", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
