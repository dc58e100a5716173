"""Keywords as groups that match in any language and are named in the site's:
"research|forschung|研究" matches any of the three and is reported as "research".
Only rows still holding the starting keywords of 0002 are changed; an editor's own
keywords are left as they are."""

import importlib

from django.db import migrations

CATEGORIES = {
    "ai": "artificial intelligence|künstliche intelligenz|人工智能, ai|ki, language model|sprachmodell|大模型|语言模型, "
    "machine learning|maschinelles lernen|机器学习, model|modell|模型, neural|neuronal|神经网络, "
    "open-weight|offene gewichte|开源权重, chatbot|智能体, training data|trainingsdaten|训练, robot|roboter|机器人",
    "business": "funding|finanzierung|融资, shares|aktie|aktien|股价|股份, investors|investoren|投资者, "
    "revenue|umsatz|营收|收入, startup|start-up|初创, valuation|bewertung|估值, market|markt|市场, "
    "profit|gewinn|利润, contract|auftrag|订单|合同, customers|kunden|客户, company|unternehmen|公司|企业",
    "science": "research|forschung|研究, scientists|wissenschaftler|forschende|forscher|科学家|研究人员, "
    "study|studie|研究结果, university|universität|hochschule|大学, experiment|versuch|实验, "
    "physics|physik|物理, biology|biologie|生物, journal|fachzeitschrift|期刊|论文, plasma|等离子体, "
    "fusion|核聚变",
    "policy": "law|gesetz|法律, council|rat|stadtrat|议会, regulation|regulierung|verordnung|监管|法规, "
    "ban|verbot|禁令, vote|abstimmung|投票, government|regierung|政府, court|gericht|法院, "
    "parliament|parlament|议会, police|polizei|警方|公安, ministry|ministerium|部门",
    "security": "outage|ausfall|störung|宕机|故障, breach|datenleck|泄露, vulnerability|sicherheitslücke|漏洞, "
    "attack|angriff|攻击, hacker|黑客, security|sicherheit|安全, incident|vorfall|事件, "
    "fraud|betrug|诈骗, scam|abzocke|骗局, malware|schadsoftware|恶意软件",
}
AUDIENCES = {
    "developers": "developers|entwickler|开发者, code|quellcode|代码, coding|programmieren|编程, api|接口, "
    "open source|open-source|quelloffen|开源, sdk, github, software|软件, benchmark|基准",
    "executives": "chief executive|ceo|vorstandschef|geschäftsführer|首席执行官|创始人, strategy|strategie|战略, "
    "revenue|umsatz|营收, market|markt|市场, competitors|konkurrenz|wettbewerber|竞争对手, customers|kunden|客户, "
    "pricing|preise|定价, acquisition|übernahme|收购, startup|start-up|初创, contract|auftrag|订单|合同",
    "investors": "funding|finanzierung|融资, raised|eingesammelt|募资, series|finanzierungsrunde|轮, "
    "valuation|bewertung|估值, shares|aktie|aktien|股价|股份, stock|börse|股票, investors|investoren|投资者, "
    "ipo|börsengang|上市, earnings|quartalszahlen|财报, fund|fonds|基金",
    "policy": "law|gesetz|法律, regulation|regulierung|verordnung|监管|法规, council|rat|stadtrat|议会, "
    "ban|verbot|禁令, government|regierung|政府, regulator|aufsicht|behörde|监管机构, "
    "compliance|合规, privacy|datenschutz|隐私, vote|abstimmung|投票, mayor|bürgermeister|市长, police|polizei|警方",
    "researchers": "research|forschung|研究, researchers|forscher|forschende|研究人员, study|studie|研究结果, "
    "paper|fachartikel|论文, experiment|versuch|实验, university|universität|hochschule|大学, "
    "scientists|wissenschaftler|科学家, dataset|datensatz|数据集, journal|fachzeitschrift|期刊",
    "creators": "film|电影, music|musik|音乐, artist|künstler|艺术家, creators|kreative|创作者, "
    "design|gestaltung|设计, designers|designer|设计师, studio|工作室",
    "security-ops": "outage|ausfall|störung|宕机|故障, breach|datenleck|泄露, vulnerability|sicherheitslücke|漏洞, "
    "attack|angriff|攻击, incident|vorfall|事件, downtime|ausfallzeit|停机, configuration|konfiguration|配置, "
    "security|sicherheit|安全, post-mortem|复盘, fraud|betrug|诈骗",
}


def forwards(apps, schema_editor):
    old = importlib.import_module("aggregator.migrations.0002_default_taxonomy")
    old_categories = {slug: keywords for _name, slug, _icon, _desc, keywords in old.CATEGORIES}
    old_audiences = {slug: keywords for _name, slug, _desc, keywords in old.AUDIENCES}
    Category = apps.get_model("aggregator", "Category")
    AudienceTag = apps.get_model("aggregator", "AudienceTag")
    for slug, keywords in CATEGORIES.items():
        Category.objects.filter(slug=slug, keywords=old_categories.get(slug, "")).update(keywords=keywords)
    for slug, keywords in AUDIENCES.items():
        AudienceTag.objects.filter(slug=slug, keywords=old_audiences.get(slug, "")).update(keywords=keywords)


class Migration(migrations.Migration):
    dependencies = [("aggregator", "0004_story_redirect_article_vector")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
