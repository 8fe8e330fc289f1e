# ruff: noqa: E501  (long sentence templates are clearer on one line)
"""Synthetic sample streams for demos, tests and benchmarks.

The generators in this module produce news-like documents (topic
``aimass.documents``), user interaction events (topic ``aimass.events``) and a
catalogue of malformed document messages that the pipeline must route to the
dead-letter queue. Everything is deterministic for a given seed and uses only
the standard library, so the same corpus can be rebuilt anywhere.

Texts are assembled from many sentence templates per category, filled with
randomly drawn names, places and numbers. The category a document was built
from is stored in ``meta["category_hint"]`` so that classifier output can be
checked against it. Many fillers name entities of the demo knowledge base
(``resources/kb/demo-kb.jsonl``), some through ambiguous aliases ("Milan",
"Jordan", "Mercury") that the sentence around them decides; their spans are
stored in ``meta["entity_hints"]`` so that entity linking can be checked too.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = [
    "CATEGORIES",
    "bad_messages",
    "generate_documents",
    "generate_events",
    "write_jsonl",
]

CATEGORIES: tuple[str, ...] = (
    "sports",
    "business",
    "technology",
    "politics",
    "science",
    "health",
    "entertainment",
)

#: Default start of the generated stream: 2025-01-01T00:00:00Z in epoch ms.
DEFAULT_START_TS_MS = 1_735_689_600_000

_MIN_WORDS = 25
_MAX_WORDS = 90
_MAX_SENTENCES = 4

# --------------------------------------------------------------------------
# Slot fillers
# --------------------------------------------------------------------------

_FIRST_NAMES = (
    "Amara",
    "Lukas",
    "Sofia",
    "Mateo",
    "Hana",
    "Oliver",
    "Priya",
    "Jonas",
    "Elena",
    "Kwame",
    "Marta",
    "Diego",
    "Yuki",
    "Tomasz",
    "Leila",
    "Rafael",
    "Ingrid",
    "Samuel",
    "Nadia",
    "Victor",
    "Chloe",
    "Arjun",
    "Freya",
    "Omar",
    "Beatriz",
    "Henrik",
    "Zara",
    "Daniel",
    "Aiko",
    "Felix",
)
_LAST_NAMES = (
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Castillo",
    "Tanaka",
    "Brennan",
    "Kowalski",
    "Haddad",
    "Novak",
    "Mensah",
    "Ferreira",
    "Schultz",
    "Iyer",
    "Rossi",
    "Delacroix",
    "Nakamura",
    "Petrov",
    "Vargas",
    "Eriksen",
    "Adeyemi",
    "Whitfield",
    "Romano",
    "Sato",
    "Kaplan",
    "Oyelaran",
    "Baptiste",
)
# Fillers written ``[[surface|kb-id]]`` name an entity of the demo knowledge base
# (``resources/kb/demo-kb.jsonl``); the marks become ``meta["entity_hints"]``. The id is
# chosen by the slot, so one surface can name different entities: "Milan" is the city in
# ``_CITIES`` and the football club in ``_TEAMS``.
_TEAMS = (
    "Northbridge United",
    "Riverside Rovers",
    "Harbor City FC",
    "Eastvale Athletic",
    "Kingsport Wanderers",
    "Redmoor Town",
    "Silverlake Rangers",
    "Westford Albion",
    "Port Alden City",
    "Greywater Dynamos",
    "Ashton Vale",
    "Marlow Heath",
    "Oakridge Olympic",
    "Lakeshore Falcons",
    "Stonebridge Lions",
    "Coppergate Celtic",
    "[[Chelsea|club/chelsea]]",
    "[[Liverpool|club/liverpool]]",
    "[[Arsenal|club/arsenal]]",
    "[[Manchester United|club/manchester-united]]",
    "[[Manchester City|club/manchester-city]]",
    "[[Milan|club/ac-milan]]",
    "[[Inter Milan|club/inter-milan]]",
    "[[Juventus|club/juventus]]",
    "[[Real Madrid|club/real-madrid]]",
    "[[Barcelona|club/fc-barcelona]]",
    "[[Bayern Munich|club/bayern-munich]]",
    "[[Santos|club/santos]]",
)
_TOURNAMENTS = (
    "Champions Cup",
    "national cup",
    "continental championship",
    "league play-off",
    "Super Cup",
    "world qualifiers",
    "summer invitational",
    "[[World Cup|event/fifa-world-cup]]",
)
_FOOTBALLERS = (
    "[[Lionel Messi|person/lionel-messi]]",
    "[[Messi|person/lionel-messi]]",
    "[[Cristiano Ronaldo|person/cristiano-ronaldo]]",
    "[[Kylian Mbappé|person/kylian-mbappe]]",
    "[[Erling Haaland|person/erling-haaland]]",
    "[[Haaland|person/erling-haaland]]",
)
_TENNIS_PLAYERS = (
    "[[Novak Djokovic|person/novak-djokovic]]",
    "[[Djokovic|person/novak-djokovic]]",
    "[[Rafael Nadal|person/rafael-nadal]]",
    "[[Serena Williams|person/serena-williams]]",
    "[[Venus Williams|person/venus-williams]]",
)
_CITIES = (
    "[[London|city/london]]",
    "[[Madrid|city/madrid]]",
    "[[Berlin|city/berlin]]",
    "[[Lagos|city/lagos]]",
    "[[Tokyo|city/tokyo]]",
    "[[Toronto|city/toronto]]",
    "[[Sao Paulo|city/sao-paulo]]",
    "[[Mumbai|city/mumbai]]",
    "[[Sydney|city/sydney]]",
    "[[Nairobi|city/nairobi]]",
    "[[Seoul|city/seoul]]",
    "[[Milan|city/milan]]",
    "[[Chicago|city/chicago]]",
    "[[Warsaw|city/warsaw]]",
    "[[Istanbul|city/istanbul]]",
    "[[Mexico City|city/mexico-city]]",
    "[[Amsterdam|city/amsterdam]]",
    "[[Singapore|country/singapore]]",
    "[[Cairo|city/cairo]]",
    "[[Stockholm|city/stockholm]]",
    "[[Lisbon|city/lisbon]]",
    "[[Buenos Aires|city/buenos-aires]]",
    "[[Vienna|city/vienna]]",
    "[[Manila|city/manila]]",
    "[[Paris|city/paris]]",
    "[[Phoenix|city/phoenix]]",
    "[[Liverpool|city/liverpool]]",
    "[[Barcelona|city/barcelona]]",
)
_COUNTRIES = (
    "[[Germany|country/germany]]",
    "[[Brazil|country/brazil]]",
    "[[Japan|country/japan]]",
    "[[Kenya|country/kenya]]",
    "[[Canada|country/canada]]",
    "[[India|country/india]]",
    "[[France|country/france]]",
    "[[Australia|country/australia]]",
    "[[Nigeria|country/nigeria]]",
    "[[Spain|country/spain]]",
    "[[South Korea|country/south-korea]]",
    "[[Mexico|country/mexico]]",
    "[[Poland|country/poland]]",
    "[[Italy|country/italy]]",
    "[[Sweden|country/sweden]]",
    "[[Indonesia|country/indonesia]]",
    "[[Argentina|country/argentina]]",
    "[[Egypt|country/egypt]]",
    "the [[Netherlands|country/netherlands]]",
    "[[Chile|country/chile]]",
    "[[Vietnam|country/vietnam]]",
    "[[Norway|country/norway]]",
    "[[Portugal|country/portugal]]",
    "[[Ghana|country/ghana]]",
    "[[Jordan|country/jordan]]",
    "[[Georgia|country/georgia]]",
    "[[Turkey|country/turkey]]",
)
_COMPANIES = (
    "[[Siemens|company/siemens]]",
    "[[Toyota|company/toyota]]",
    "[[Samsung|company/samsung]]",
    "[[Unilever|company/unilever]]",
    "[[Microsoft|company/microsoft]]",
    "[[Nestle|company/nestle]]",
    "[[Airbus|company/airbus]]",
    "[[Volkswagen|company/volkswagen]]",
    "[[Sony|company/sony]]",
    "[[IBM|company/ibm]]",
    "[[Philips|company/philips]]",
    "[[Alibaba|company/alibaba]]",
    "[[Maersk|company/maersk]]",
    "[[Intel|company/intel]]",
    "[[Nvidia|company/nvidia]]",
    "[[Shell|company/shell]]",
    "[[Apple|company/apple]]",
    "[[Amazon|company/amazon]]",
    "[[Orange|company/orange]]",
    "[[Santander|company/santander]]",
    "[[Tesla|company/tesla]]",
    "[[Ford|company/ford]]",
    "[[Jaguar|company/jaguar]]",
    "[[Nike|company/nike]]",
    "[[Puma|company/puma]]",
    "[[Mars|company/mars]]",
    "[[Delta Air Lines|company/delta]]",
    "[[HSBC|company/hsbc]]",
    "[[Boeing|company/boeing]]",
    "Northwind Logistics",
    "Bluepeak Energy",
    "Corvane Foods",
    "Helixa Pharma",
    "Tideline Retail",
    "Orbital Freight",
    "Quantra Systems",
    "Meridian Telecom",
)
_BUSINESS_LEADERS = (
    "[[Warren Buffett|person/warren-buffett]]",
    "[[Jamie Dimon|person/jamie-dimon]]",
    "[[Elon Musk|person/elon-musk]]",
    "[[Jeff Bezos|person/jeff-bezos]]",
    "[[Bill Gates|person/bill-gates]]",
)
_CENTRAL_BANKS = (
    "the [[Federal Reserve|org/federal-reserve]]",
    "the [[Fed|org/federal-reserve]]",
    "the [[European Central Bank|org/ecb]]",
    "the [[ECB|org/ecb]]",
    "the [[Bank of England|org/bank-of-england]]",
    "the [[Bank of Japan|org/bank-of-japan]]",
)
_TECH_COMPANIES = (
    "[[Microsoft|company/microsoft]]",
    "[[Google|company/google]]",
    "[[Apple|company/apple]]",
    "[[Amazon|company/amazon]]",
    "[[Samsung|company/samsung]]",
    "[[IBM|company/ibm]]",
    "[[Nvidia|company/nvidia]]",
    "[[Intel|company/intel]]",
    "[[AMD|company/amd]]",
    "[[Qualcomm|company/qualcomm]]",
    "[[Sony|company/sony]]",
    "[[Huawei|company/huawei]]",
    "[[Meta|company/meta]]",
    "[[OpenAI|company/openai]]",
    "Quantra Systems",
    "Lumenforge",
    "Cobaltwave",
    "Nimbus Labs",
    "Parallax AI",
)
_CHIPMAKERS = (
    "[[TSMC|company/tsmc]]",
    "[[Intel|company/intel]]",
    "[[Samsung|company/samsung]]",
    "[[Micron|company/micron]]",
    "[[GlobalFoundries|company/globalfoundries]]",
    "[[SK Hynix|company/sk-hynix]]",
)
_TECH_LEADERS = (
    "[[Jensen Huang|person/jensen-huang]]",
    "[[Sam Altman|person/sam-altman]]",
    "[[Satya Nadella|person/satya-nadella]]",
    "[[Sundar Pichai|person/sundar-pichai]]",
    "[[Tim Cook|person/tim-cook]]",
)
_FUNDS = (
    "Blackridge Capital",
    "Aurora Partners",
    "Crescent Equity",
    "Ironwood Ventures",
    "Summit Harbor Capital",
    "Polaris Growth Fund",
)
_PRODUCTS = (
    "Nova X2 smartphone",
    "Aero 14 laptop",
    "Pulse smartwatch",
    "Vista VR headset",
    "Atlas tablet",
    "Echo Pro earbuds",
    "Orbit home speaker",
    "Spark 5G router",
)
_CHIPS = ("eight-core", "neural", "ARM-based", "low-power", "data centre", "graphics")
_SOFTWARE = (
    "[[Python|product/python]]",
    "[[JavaScript|product/javascript]]",
    "[[Rust|product/rust]]",
    "[[Java|product/java]]",
    "[[Linux|product/linux]]",
    "[[Swift|product/swift]]",
    "database",
    "web server",
)
_PARTIES = (
    "Social Democratic Party",
    "Liberal Alliance",
    "Green Coalition",
    "National Reform Party",
    "Labour Front",
    "Centre Union",
    "People's Movement",
    "Christian Democratic Union",
    "Progressive Bloc",
)
_LEADERS = (
    "[[Emmanuel Macron|person/emmanuel-macron]]",
    "[[Olaf Scholz|person/olaf-scholz]]",
    "[[Narendra Modi|person/narendra-modi]]",
    "[[Keir Starmer|person/keir-starmer]]",
    "[[Justin Trudeau|person/justin-trudeau]]",
    "[[Recep Tayyip Erdogan|person/recep-tayyip-erdogan]]",
    "[[Volodymyr Zelensky|person/volodymyr-zelensky]]",
    "[[Xi Jinping|person/xi-jinping]]",
    "[[Joe Biden|person/joe-biden]]",
    "[[Donald Trump|person/donald-trump]]",
)
_BLOCS = (
    "the [[United Nations|org/united-nations]]",
    "the [[European Union|org/european-union]]",
    "the [[EU|org/european-union]]",
    "the [[UN|org/united-nations]]",
)
_TELESCOPES = (
    "[[James Webb Space Telescope|telescope/jwst]]",
    "[[Very Large Telescope|telescope/vlt]]",
    "[[Hubble Space Telescope|telescope/hubble]]",
    "[[Hubble|telescope/hubble]] telescope",
    "[[Atacama Large Millimeter Array|telescope/alma]]",
    "[[Vera Rubin Observatory|telescope/vera-rubin]]",
    "[[Euclid telescope|telescope/euclid]]",
)
_INSTITUTIONS = (
    "the [[University of Cambridge|univ/cambridge]]",
    "[[Cambridge|univ/cambridge]]",
    "[[Oxford|univ/oxford]]",
    "[[ETH Zurich|univ/eth-zurich]]",
    "the [[University of Tokyo|univ/tokyo]]",
    "the [[Max Planck Institute|org/max-planck-society]]",
    "[[MIT|univ/mit]]",
    "[[Harvard|univ/harvard]]",
    "[[Stanford|univ/stanford]]",
    "the [[University of Cape Town|univ/cape-town]]",
    "the [[Weizmann Institute|univ/weizmann]]",
    "the [[University of Melbourne|univ/melbourne]]",
    "[[McGill University|univ/mcgill]]",
    "the [[Sorbonne|univ/sorbonne]]",
)
_LABS = (
    "[[CERN|org/cern]]",
    "[[Fermilab|org/fermilab]]",
    "the DESY laboratory",
    "the Brookhaven laboratory",
)
_FIELDS = (
    "astrophysics",
    "marine biology",
    "quantum physics",
    "genetics",
    "climate science",
    "neuroscience",
    "materials science",
    "particle physics",
    "geology",
    "ecology",
    "organic chemistry",
    "palaeontology",
)
_PLANETS = (
    "[[Mars|planet/mars]]",
    "[[Jupiter|planet/jupiter]]'s moon [[Europa|moon/europa]]",
    "[[Saturn|planet/saturn]]'s moon [[Titan|moon/titan]]",
    "[[Venus|planet/venus]]",
    "[[Mercury|planet/mercury]]",
)
_MISSIONS = ("Horizon", "Pathfinder II", "Aurora", "Meridian", "Voyager Next")
_SPACE_AGENCIES = (
    "[[NASA|org/nasa]]",
    "the [[European Space Agency|org/esa]]",
    "[[ESA|org/esa]]",
)
_SCIENTISTS = (
    "[[Albert Einstein|person/albert-einstein]]",
    "[[Einstein|person/albert-einstein]]",
    "[[Isaac Newton|person/isaac-newton]]",
    "[[Darwin|person/charles-darwin]]",
    "[[Stephen Hawking|person/stephen-hawking]]",
    "[[Max Planck|person/max-planck]]",
)
_DISEASES = (
    "[[measles|disease/measles]]",
    "[[influenza|disease/influenza]]",
    "[[tuberculosis|disease/tuberculosis]]",
    "[[malaria|disease/malaria]]",
    "[[dengue fever|disease/dengue]]",
    "[[RSV|disease/rsv]]",
    "[[hepatitis B|disease/hepatitis-b]]",
    "[[cholera|disease/cholera]]",
    "[[whooping cough|disease/whooping-cough]]",
    "[[norovirus|disease/norovirus]]",
    "[[COVID-19|disease/covid-19]]",
    "[[polio|disease/polio]]",
)
_CHRONIC = (
    "[[heart disease|disease/heart-disease]]",
    "[[type 2 diabetes|disease/type-2-diabetes]]",
    "[[Alzheimer's disease|disease/alzheimers]]",
    "[[stroke|disease/stroke]]",
    "high blood pressure",
    "colon cancer",
    "depression",
    "[[asthma|disease/asthma]]",
)
_VECTOR_DISEASES = (
    "[[dengue fever|disease/dengue]]",
    "[[malaria|disease/malaria]]",
    "[[West Nile virus|disease/west-nile]]",
    "[[Zika virus|disease/zika]]",
)
_DRUGS = (
    "Veltrazine",
    "Corimab",
    "Nexaprol",
    "Duravir",
    "Solentra",
    "Ambrolix",
    "Tervacept",
    "Lunaflox",
)
_DRUGMAKERS = (
    "[[Pfizer|company/pfizer]]",
    "[[Moderna|company/moderna]]",
    "[[AstraZeneca|company/astrazeneca]]",
    "[[Novartis|company/novartis]]",
    "[[Roche|company/roche]]",
    "[[Novo Nordisk|company/novo-nordisk]]",
    "[[Bayer|company/bayer]]",
    "Helixa Pharma",
)
_REGULATORS = (
    "[[FDA|org/fda]]",
    "[[European Medicines Agency|org/ema]]",
    "[[EMA|org/ema]]",
)
_HEALTH_BODIES = (
    "The [[World Health Organization|org/who]]",
    "The [[WHO|org/who]]",
    "[[UNICEF|org/unicef]]",
    "The [[CDC|org/cdc]]",
)
_HOSPITALS = (
    "St Mary's Hospital",
    "the City General Hospital",
    "the Royal Infirmary",
    "the University Medical Centre",
    "Mercy Children's Hospital",
    "the National Heart Institute",
)
_FILMS = (
    "The Last Lighthouse",
    "Paper Moons",
    "Echoes of Tomorrow",
    "Midnight Harbour",
    "The Glass Orchard",
    "Silent Frequency",
    "Crimson Valley",
    "A Winter in Lisbon",
    "The Cartographer",
    "Neon Tides",
    "Small Gods of Summer",
    "Iron Garden",
)
_SHOWS = (
    "Northern Lights",
    "The Understudy",
    "Saltwater",
    "Kingdom of Clocks",
    "Night Shift",
    "The Archivists",
    "Parallel Lines",
)
_ARTISTS = (
    "Lena Marquez",
    "Kofi Blue",
    "Ivy Calloway",
    "DJ Sorrento",
    "Mika Ren",
    "Aurelio Santos",
    "June Halloran",
    "Tariq Vale",
    "Noor",
    "Sasha Kingsley",
)
_STARS = (
    "[[Taylor Swift|person/taylor-swift]]",
    "[[Beyoncé|person/beyonce]]",
    "[[Adele|person/adele]]",
    "[[Paul McCartney|person/paul-mccartney]]",
    "[[Tom Hanks|person/tom-hanks]]",
    "[[Meryl Streep|person/meryl-streep]]",
    "[[Harrison Ford|person/harrison-ford]]",
    "[[Paris Hilton|person/paris-hilton]]",
)
_STUDIOS = (
    "[[Netflix|company/netflix]]",
    "[[Disney|company/disney]]",
    "[[Amazon|company/amazon]]",
    "[[Sony|company/sony]]",
)
_BANDS = (
    "The Velvet Drifters",
    "Glass Animals Club",
    "Northern Static",
    "Paper Kites Union",
    "Luna Parade",
    "The Midnight Ferry",
    "[[Coldplay|band/coldplay]]",
)
_ALBUMS = (
    "Golden Hour",
    "Static Bloom",
    "Letters Home",
    "Blue Hours",
    "Wildfire Season",
    "Concrete Gardens",
)
_FESTIVALS = (
    "[[Venice Film Festival|event/venice-film-festival]]",
    "[[Toronto International Film Festival|event/tiff]]",
    "[[Berlinale|event/berlinale]]",
    "[[Sundance Film Festival|event/sundance]]",
    "[[Cannes Film Festival|event/cannes-film-festival]]",
    "[[Glastonbury Festival|event/glastonbury]]",
)
_VENUES = (
    "[[Wembley Stadium|place/wembley-stadium]]",
    "[[Madison Square Garden|place/madison-square-garden]]",
    "the O2 Arena",
    "the Tokyo Dome",
    "the Hollywood Bowl",
    "the Olympiastadion",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_ORDINALS = ("second", "third", "fourth", "fifth", "sixth")
_RANKS = ("second", "third", "fourth", "fifth")
_SOURCES = (
    "newswire",
    "rss:worlddesk",
    "rss:citypaper",
    "partner-feed",
    "press-release",
    "web-crawl",
    "editorial",
)

# --------------------------------------------------------------------------
# Sentence templates (original text written for this project)
# --------------------------------------------------------------------------

_SENTENCES: dict[str, tuple[str, ...]] = {
    "sports": (
        "{team} beat {team2} {score} on {weekday}, with {athlete} scoring twice in the second half.",
        "Coach {coach} said the squad had trained hard all week before the {tournament} match in {city}.",
        "{athlete} struck the winning goal in the {minute}th minute as {team} moved to the top of the league table.",
        "The league confirmed that {team} will host {team2} at their home stadium in {city} next {weekday}.",
        "Fans packed the stadium in {city} to watch {team} and {team2} play out a tense {draw} draw.",
        "{team} have signed midfielder {athlete} on a {small}-year contract reportedly worth {money_m} million dollars.",
        "{athlete} will miss the next {small} matches with a hamstring injury picked up during training.",
        "After the defeat, coach {coach} admitted the defence had made too many mistakes against {team2}.",
        "{country} reached the {tournament} final after a penalty shootout that went to eleven rounds.",
        "Sprinter {athlete} set a national record of {sprint} seconds in the 100 metres at the athletics meeting in {city}.",
        "The referee showed two red cards as {team} held on for a narrow win over ten-man {team2}.",
        "{team} extended their unbeaten run to {medium} games, the longest streak in the club's history.",
        "Tennis player {athlete} reached the semi-finals in {city} after saving three match points in the deciding set.",
        "Goalkeeper {athlete} made {small} saves to keep a clean sheet in the derby against {team2}.",
        "Coach {coach} was sacked by {team} after a run of {small} straight league defeats.",
        "Tickets for the {tournament} semi-final in {city} sold out within an hour, organisers said.",
        "The title race tightened as {team} dropped points at home to {team2} for the second time this season.",
        "Cyclist {athlete} took the leader's jersey after a brutal mountain stage near {city}.",
        "The players' union said the crowded match schedule was putting athletes at risk of injury.",
        "{athlete} scored a hat-trick in {minute} minutes as {team} thrashed {team2} in the cup.",
        "{footballer} scored twice in the derby against {team2} and now has {medium} league goals this season.",
        "{tennis_player} won in straight sets to reach the quarter-finals of [[Wimbledon|event/wimbledon]].",
        "Commentators compared the rookie's 50-point game to [[Jordan|person/michael-jordan]] in his years with the [[Chicago Bulls|club/chicago-bulls]].",
        "[[Hamilton|person/lewis-hamilton]] started from pole position and led every lap of the Grand Prix in {city}.",
    ),
    "business": (
        "{company} reported quarterly earnings of {money_b} billion dollars, beating analyst forecasts by {pct} percent.",
        "Shares of {company} fell {pct} percent in early trading after the firm cut its full-year revenue outlook.",
        "{company} agreed to buy {company2} in an all-cash deal valued at {money_b} billion dollars.",
        "The central bank of {country} raised interest rates by {bps} basis points to cool persistent inflation.",
        "Investors cheered as {company} announced a {money_b} billion dollar share buyback programme.",
        "The merger between {company} and {company2} still needs approval from competition regulators in {country}.",
        "{company} plans to cut {jobs} jobs as part of a restructuring aimed at saving costs, chief executive {person} said.",
        "Stock markets in {city} closed {pct} percent higher, led by gains in banking and energy shares.",
        "Retail sales in {country} rose {pct} percent in {month}, according to figures from the national statistics office.",
        "{company} will open a new factory in {city}, creating roughly {jobs} jobs over the next three years.",
        "Analysts expect profit margins at {company} to shrink as raw material costs keep climbing.",
        "Chief financial officer {person} told investors that the quarterly dividend would remain unchanged.",
        "Oil prices climbed to {oil} dollars a barrel, lifting shares of energy producers in {country}.",
        "{company} issued a profit warning, blaming weak consumer demand in {country} and a higher wage bill.",
        "Government bond yields in {country} hit a {medium}-month high as traders priced in further rate hikes.",
        "Private equity firm {fund} is in talks to acquire a majority stake in {company2}, people familiar with the matter said.",
        "Revenue at {company} grew {pct} percent year on year, driven by strong sales in {country}.",
        "A logistics startup from {city} raised {money_m} million dollars in a funding round led by {fund}.",
        "The currency of {country} slipped against the dollar after inflation data came in above expectations.",
        "Shareholders of {company2} approved the takeover bid at an extraordinary general meeting in {city}.",
        "Billionaire investor {business_leader} said in an interview that shares of {company} still looked cheap.",
        "Stock markets in {city} rallied after {central_bank} held interest rates steady and signalled cuts later in the year.",
        "Analysts at [[Goldman Sachs|company/goldman-sachs]] raised their price target for {company}, citing strong cash flow.",
    ),
    "technology": (
        "{tech} unveiled a new {chip} processor that it says runs AI workloads {small} times faster than its predecessor.",
        "A software update for the {product} was pulled after users reported crashes and battery drain.",
        "{tech} released an open-source large language model trained on {small} trillion tokens of text and code.",
        "Security researchers disclosed a critical vulnerability in a popular {software} library used by millions of servers.",
        "The {product} will ship with a redesigned operating system and an on-device AI assistant, {tech} said.",
        "Chipmaker {chipco} plans to build a {money_b} billion dollar semiconductor plant near {city}.",
        "Developers can now run {tech}'s machine learning models directly in the web browser using WebGPU.",
        "A ransomware attack disrupted computer systems at several firms in {city}, forcing staff to work offline.",
        "{tech} is moving its data centres to custom {nm}-nanometre chips to cut energy use.",
        "The new release of the {software} toolchain adds faster compilation and better memory safety checks.",
        "{tech} said its cloud platform suffered an outage lasting {small} hours that affected customers across {country}.",
        "Engineers at {tech} demonstrated a quantum computer with {qubits} qubits at a developer conference in {city}.",
        "Regulators in {country} opened an inquiry into how {tech} uses personal data to train its AI systems.",
        "Global smartphone shipments shrank {pct} percent last quarter as consumers kept their devices for longer.",
        "{tech} launched a programming assistant that writes, tests and reviews code inside popular editors.",
        "Startups in {city} are racing to build warehouse robots that sort parcels using computer vision.",
        "The {product} features a {nm}-nanometre chip, a brighter display and a battery that lasts two full days.",
        "{tech} patched a bug in its encryption software that could have exposed user passwords.",
        "Open-source maintainers warned that the {software} ecosystem depends on a handful of unpaid volunteers.",
        "{tech} said its new AI model can translate speech between {medium} languages in real time.",
        "{tech_leader} told developers at a conference in {city} that demand for AI chips still far exceeds supply.",
        "{tech} said its voice assistant now runs on [[Android|product/android]] phones as well as [[Windows|product/windows]] laptops.",
        "A start-up in {city} lets programmers switch between [[ChatGPT|product/chatgpt]] and [[Gemini|product/gemini]] through a single API.",
    ),
    "politics": (
        "Prime Minister {politician} called a snap election for {month}, hoping to strengthen the {party}'s majority in parliament.",
        "Parliament in {country} passed the budget bill by {votes} votes to {votes2} after a late-night debate.",
        "Voters in {country} head to the polls on {weekday} in a presidential election seen as too close to call.",
        "Opposition leader {politician} accused the government of breaking its promises on housing and taxes.",
        "The {party} won {seats} seats in the regional election, its best result in two decades.",
        "Foreign minister {politician} met a counterpart from {country} to discuss trade and border security.",
        "Lawmakers voted to open an inquiry into campaign funding after a critical report by the electoral commission.",
        "The coalition government in {country} collapsed after the {party} withdrew its ministers from the cabinet.",
        "President {politician} signed a decree raising the minimum wage, which critics said bypassed parliament.",
        "Opinion polls show the {party} leading with {pct2} percent support ahead of next month's general election.",
        "Thousands of protesters marched through {city} demanding electoral reform and an end to corruption.",
        "The interior minister resigned on {weekday} following a scandal over leaked police documents.",
        "Senators from the {party} blocked a vote on the immigration bill, delaying it until after the recess.",
        "Diplomats from {country} and {country2} agreed on a ceasefire framework at talks hosted in {city}.",
        "The constitutional court ruled that the government's emergency powers law was partly unconstitutional.",
        "{politician}, a former mayor of {city}, announced a bid to lead the {party} at the next party congress.",
        "Turnout in the referendum reached {pct2} percent, the highest figure since the vote on the new constitution.",
        "Ministers debated a proposal to lower the voting age to sixteen in national elections.",
        "The finance minister, {politician}, defended the tax reform in a heated session of parliament.",
        "Election observers from {country2} said the vote in {country} was largely free and fair.",
        "{leader} and {leader2} discussed trade tariffs and border security at a summit in {city}.",
        "The government of {country} asked {bloc} to send observers to monitor next month's parliamentary election.",
        "Defence ministers of [[NATO|org/nato]] members met in [[Brussels|city/brussels]] and pledged to raise military spending, a plan their parliaments must still approve.",
        "Diplomats said [[Washington|city/washington-dc]] had quietly backed the ceasefire talks between {country} and {country2}.",
    ),
    "science": (
        "Astronomers using the {telescope} detected water vapour in the atmosphere of an exoplanet {ly} light-years away.",
        "Researchers at {institution} described a new method in {field} that cuts measurement noise in half.",
        "Physicists at {lab} measured a particle decay rate that matched theoretical predictions to {small} decimal places.",
        "A fossil discovered in {country} suggests that early mammals were larger than scientists had assumed.",
        "The {mission} probe sent back high-resolution images of the surface of {planet}.",
        "Geneticists sequenced the genome of a rare orchid, identifying {genes} genes linked to drought tolerance.",
        "Climate scientists reported that Arctic sea ice shrank to its {rank} smallest extent since satellite records began.",
        "An experiment at {institution} showed that a new material becomes superconducting at {temp} kelvin.",
        "The research team, led by professor {person}, spent {medium} months collecting samples from the deep ocean off {country}.",
        "Scientists observed a gravitational wave signal produced by two black holes merging over a billion years ago.",
        "Marine biologists tagged {animals} sharks to study how warming oceans are changing their migration routes.",
        "Chemists developed a catalyst that turns captured carbon dioxide into methanol using only sunlight.",
        "The {telescope} captured the most detailed image yet of a star-forming region in a neighbouring galaxy.",
        "Neuroscientists mapped the wiring of {neurons} neurons in a fruit fly brain using electron microscopy.",
        "Archaeologists in {country} unearthed a {age}-year-old settlement, and radiocarbon dating confirmed its age.",
        "The authors said the findings in {field} must now be replicated by independent laboratories.",
        "The experiment ran for {medium} weeks and produced more than {tb} terabytes of data for analysis.",
        "Volcanologists installed new seismic sensors on a volcano near {city} after a swarm of small earthquakes.",
        "A peer-reviewed study in {field} challenged a hypothesis that had stood for more than forty years.",
        "Researchers at {institution} grew miniature organ models in the lab to study how cells communicate.",
        "The measurement agrees with a prediction first made by {scientist} to within a fraction of a percent.",
        "Engineers at {space_agency} are testing the heat shield of a lander that will one day descend to {planet}.",
    ),
    "health": (
        "Hospitals in {city} reported a sharp rise in {disease} cases, with emergency wards running at full capacity.",
        "The health ministry of {country} launched a vaccination campaign against {disease} aimed at {people} children.",
        "In a clinical trial run by {drugmaker}, the drug {drug} cut hospital admissions among patients with {disease} by {pct2} percent.",
        "Surgeons at {hospital} performed the country's first robotic heart transplant on a {patient_age}-year-old patient.",
        "{health_body} warned that {disease} outbreaks are spreading faster because of low vaccine coverage.",
        "Nurses in {country} went on strike over pay and staffing levels, forcing hospitals to postpone routine surgery.",
        "Regulators approved {drug}, a new treatment for {chronic}, after trials showed fewer side effects.",
        "Waiting lists for hip and knee operations in {country} reached a record {wait} patients.",
        "Public health officials urged people over sixty-five to get a booster vaccine before the winter season.",
        "A study of {people} adults linked regular exercise to a lower risk of {chronic}.",
        "The hospital in {city} opened a new cancer unit with {beds} beds and two radiotherapy machines.",
        "Health experts said rising obesity rates were putting more pressure on clinics and family doctors.",
        "Pharmacies in {city} reported shortages of antibiotics, prompting the ministry to release emergency stocks.",
        "Dr {person}, who leads the intensive care unit at {hospital}, said most patients admitted were unvaccinated.",
        "The government pledged {money_m} million dollars to expand mental health services for young patients.",
        "A new blood test can detect {chronic} years before symptoms appear, doctors at {hospital} reported.",
        "Doctors advised patients with symptoms of {disease} to seek medical care early, as prompt treatment improves recovery.",
        "Mosquito control teams in {city} sprayed several neighbourhoods after confirmed cases of {vector_disease}.",
        "The vaccine rollout in {country} reached {pct2} percent of adults, according to the health ministry.",
        "Paramedics in {city} said ambulance response times had improved after the hospital added {beds} new beds.",
        "The {regulator} cleared {drug} for adults with {chronic} after two large trials showed it was safe.",
        "Doctors in {city} reported a surge in patients asking for [[Ozempic|product/ozempic]] to lose weight.",
    ),
    "entertainment": (
        "The film {film}, directed by {person}, topped the box office with {money_m} million dollars on its opening weekend.",
        "Singer {artist} announced a world tour to promote the new album {album}, starting in {city} in {month}.",
        "{film} won the top prize at the {festival}, while {person} was named best actress.",
        "Tickets for {artist}'s concert at {venue} sold out in under ten minutes.",
        "The streaming series {show} was renewed for a {ordinal} season after breaking viewing records.",
        "Critics praised {person}'s performance in {film}, calling it the role of a lifetime.",
        "The band {band} released their first album in {medium} years, a moody record inspired by life in {city}.",
        "The {festival} will open with the world premiere of the comedy {film}.",
        "{artist}'s new single climbed to number one on the charts in {country} in its first week.",
        "Filming of the sequel to {film} began in {city}, with most of the original cast returning.",
        "The musical {show} closed after {performances} performances, ending one of the longest runs on the stage.",
        "Actor {person} will star as a retired detective in a thriller produced by a major streaming service.",
        "Fans queued overnight outside {venue} to see {band} perform their greatest hits.",
        "The animated film {film} has become the highest-grossing release of the year in {country}.",
        "Rapper {artist} cancelled the remaining concerts of the tour, citing exhaustion.",
        "The soundtrack to {film}, composed by {person}, earned a nomination for best original score.",
        "A documentary about the life of {artist} premiered at the {festival} to a standing ovation.",
        "The video game adaptation {film} drew mixed reviews from critics but strong ticket sales.",
        "{artist} and {band} will headline the summer music festival in {city} this {month}.",
        "The television drama {show} swept the awards night, taking home {small} trophies including best series.",
        "{star} will present the lifetime achievement award at the {festival} this year.",
        "The streaming rights to the drama {show} went to {studio}, which will air a {ordinal} season next year.",
        "A touring production of [[Hamilton|work/hamilton-musical]] opens in {city} in {month}, and most tickets have already sold.",
        "Fans of [[Queen|band/queen]] packed the cinema for the premiere of a biopic about [[Mercury|person/freddie-mercury]] and the band's early gigs.",
    ),
}

_TITLES: dict[str, tuple[str, ...]] = {
    "sports": (
        "{team} edge {team2} in {city} thriller",
        "{athlete} shines as {team} stay top",
        "Coach {coach} under pressure after defeat",
        "{tournament}: late drama in {city}",
        "Injury blow for {team} ahead of derby",
    ),
    "business": (
        "{company} beats forecasts as revenue climbs",
        "{company} agrees {money_b} billion dollar deal",
        "Markets in {city} rally on rate hopes",
        "Profit warning hits {company} shares",
        "Central bank of {country} lifts rates again",
    ),
    "technology": (
        "{tech} unveils faster AI chip",
        "Security flaw found in {software} library",
        "{tech} cloud outage hits customers in {country}",
        "Hands on with the {product}",
        "{chipco} to build new chip plant near {city}",
    ),
    "politics": (
        "{politician} calls snap election",
        "{party} gains ground in {country} polls",
        "Parliament passes budget after all-night session",
        "Coalition crisis deepens in {country}",
        "Protesters in {city} demand electoral reform",
    ),
    "science": (
        "{telescope} spots water on distant world",
        "New discovery in {field} surprises researchers",
        "Fossil find in {country} rewrites mammal history",
        "{mission} probe returns images of {planet}",
        "Breakthrough in superconductors at {institution}",
    ),
    "health": (
        "{disease} cases rise in {city}",
        "Trial of {drug} shows promise",
        "Hospitals in {country} under strain",
        "New vaccine campaign against {disease}",
        "Doctors at {hospital} report medical first",
    ),
    "entertainment": (
        "{film} tops the box office",
        "{artist} announces world tour",
        "{show} renewed for a {ordinal} season",
        "{band} return with new album",
        "{festival} line-up revealed",
    ),
}


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"


def _fillers(rng: random.Random) -> dict[str, str]:
    """Draw one value for every slot used by the templates."""
    team, team2 = rng.sample(_TEAMS, 2)
    company, company2 = rng.sample(_COMPANIES, 2)
    leader, leader2 = rng.sample(_LEADERS, 2)
    country, country2 = rng.sample(_COUNTRIES, 2)
    goals_a = rng.randint(1, 5)
    goals_b = rng.randint(0, goals_a - 1)
    level = rng.randint(0, 3)
    votes = rng.randint(180, 320)
    return {
        "team": team,
        "team2": team2,
        "athlete": _person(rng),
        "coach": _person(rng),
        "person": _person(rng),
        "politician": _person(rng),
        "tournament": rng.choice(_TOURNAMENTS),
        "city": rng.choice(_CITIES),
        "country": country,
        "country2": country2,
        "company": company,
        "company2": company2,
        "tech": rng.choice(_TECH_COMPANIES),
        "chipco": rng.choice(_CHIPMAKERS),
        "fund": rng.choice(_FUNDS),
        "footballer": rng.choice(_FOOTBALLERS),
        "tennis_player": rng.choice(_TENNIS_PLAYERS),
        "business_leader": rng.choice(_BUSINESS_LEADERS),
        "central_bank": rng.choice(_CENTRAL_BANKS),
        "tech_leader": rng.choice(_TECH_LEADERS),
        "leader": leader,
        "leader2": leader2,
        "bloc": rng.choice(_BLOCS),
        "space_agency": rng.choice(_SPACE_AGENCIES),
        "scientist": rng.choice(_SCIENTISTS),
        "health_body": rng.choice(_HEALTH_BODIES),
        "drugmaker": rng.choice(_DRUGMAKERS),
        "regulator": rng.choice(_REGULATORS),
        "star": rng.choice(_STARS),
        "studio": rng.choice(_STUDIOS),
        "product": rng.choice(_PRODUCTS),
        "chip": rng.choice(_CHIPS),
        "software": rng.choice(_SOFTWARE),
        "party": rng.choice(_PARTIES),
        "telescope": rng.choice(_TELESCOPES),
        "institution": rng.choice(_INSTITUTIONS),
        "lab": rng.choice(_LABS),
        "field": rng.choice(_FIELDS),
        "planet": rng.choice(_PLANETS),
        "mission": rng.choice(_MISSIONS),
        "disease": rng.choice(_DISEASES),
        "chronic": rng.choice(_CHRONIC),
        "vector_disease": rng.choice(_VECTOR_DISEASES),
        "drug": rng.choice(_DRUGS),
        "hospital": rng.choice(_HOSPITALS),
        "film": rng.choice(_FILMS),
        "show": rng.choice(_SHOWS),
        "artist": rng.choice(_ARTISTS),
        "band": rng.choice(_BANDS),
        "album": rng.choice(_ALBUMS),
        "festival": rng.choice(_FESTIVALS),
        "venue": rng.choice(_VENUES),
        "weekday": rng.choice(_WEEKDAYS),
        "month": rng.choice(_MONTHS),
        "ordinal": rng.choice(_ORDINALS),
        "rank": rng.choice(_RANKS),
        "score": f"{goals_a}-{goals_b}",
        "draw": f"{level}-{level}",
        "minute": str(rng.randint(4, 89)),
        "small": str(rng.randint(2, 9)),
        "medium": str(rng.randint(11, 48)),
        "money_m": str(rng.randint(12, 480)),
        "money_b": f"{rng.uniform(1.2, 68.0):.1f}",
        "pct": f"{rng.uniform(0.4, 14.9):.1f}",
        "pct2": str(rng.randint(21, 78)),
        "bps": str(rng.choice((25, 50, 75, 100))),
        "jobs": f"{rng.randint(3, 120) * 100:,}",
        "oil": f"{rng.uniform(58.0, 104.0):.2f}",
        "sprint": f"{rng.uniform(9.80, 10.35):.2f}",
        "nm": str(rng.choice((2, 3, 4, 5, 7))),
        "qubits": str(rng.choice((127, 256, 433, 1121, 2048))),
        "votes": str(votes),
        "votes2": str(rng.randint(90, votes - 10)),
        "seats": str(rng.randint(8, 96)),
        "ly": str(rng.randint(40, 1300)),
        "genes": f"{rng.randint(12, 640):,}",
        "temp": str(rng.randint(18, 260)),
        "animals": str(rng.randint(20, 180)),
        "neurons": f"{rng.randint(20, 140) * 1000:,}",
        "age": f"{rng.randint(3, 120) * 100:,}",
        "tb": str(rng.randint(40, 900)),
        "people": f"{rng.randint(2, 900) * 1000:,}",
        "patient_age": str(rng.randint(19, 78)),
        "wait": f"{rng.randint(150, 900) * 1000:,}",
        "beds": str(rng.randint(24, 160)),
        "performances": f"{rng.randint(400, 9000):,}",
    }


# Slots that name the story's protagonists stay fixed within one document so
# that title and sentences talk about the same teams, firms and places;
# people, numbers and the remaining slots are drawn afresh for every sentence.
_STORY_SLOTS = (
    "team",
    "team2",
    "coach",
    "city",
    "country",
    "country2",
    "company",
    "company2",
    "tech",
    "product",
    "party",
    "telescope",
    "institution",
    "field",
    "disease",
    "drug",
    "hospital",
    "film",
    "show",
    "artist",
    "band",
    "album",
    "festival",
)


def _compose_text(rng: random.Random, category: str, story: Mapping[str, str]) -> str:
    """Build a 1-4 sentence text of roughly 25-90 words for ``category``.

    The text still carries the ``[[surface|kb-id]]`` marks; see :func:`_unmark`.
    """
    templates = list(_SENTENCES[category])
    rng.shuffle(templates)
    target = rng.randint(_MIN_WORDS, 75)
    sentences: list[str] = []
    words = 0
    for template in templates:
        slots = _fillers(rng)
        slots.update({key: story[key] for key in _STORY_SLOTS})
        sentence = template.format_map(slots)
        count = len(sentence.split())
        if sentences and words + count > _MAX_WORDS:
            continue
        sentences.append(sentence)
        words += count
        if len(sentences) >= _MAX_SENTENCES or words >= target:
            break
    return " ".join(sentences)


_MARK = re.compile(r"\[\[([^\[\]|]+)\|([a-z0-9][a-z0-9_./-]*)\]\]")


def _unmark(marked: str) -> tuple[str, list[dict[str, object]]]:
    """Drop the ``[[surface|kb-id]]`` marks; return the plain text and the marked spans.

    Each span is ``{"id": kb-id, "start": ..., "end": ...}`` with character offsets
    into the returned text, in text order.
    """
    parts: list[str] = []
    hints: list[dict[str, object]] = []
    length = 0
    last = 0
    for match in _MARK.finditer(marked):
        literal = marked[last : match.start()]
        surface, entity_id = match.group(1), match.group(2)
        parts += (literal, surface)
        length += len(literal)
        hints.append({"id": entity_id, "start": length, "end": length + len(surface)})
        length += len(surface)
        last = match.end()
    parts.append(marked[last:])
    return "".join(parts), hints


def generate_documents(
    n: int,
    *,
    seed: int = 7,
    tenants: Sequence[str] = ("acme", "globex", "initech"),
    start_ts_ms: int | None = None,
) -> list[dict[str, object]]:
    """Generate ``n`` news-like documents for topic ``aimass.documents``.

    Args:
        n: Number of documents to generate (``>= 0``).
        seed: Random seed; the same seed always yields the same documents.
        tenants: Tenant names the documents are spread over.
        start_ts_ms: Epoch milliseconds of the first document. Defaults to
            2025-01-01T00:00:00Z so that output is fully deterministic.

    Returns:
        A list of dicts with keys ``id``, ``tenant``, ``ts`` (strictly
        increasing epoch ms), ``text``, ``title``, ``lang`` and ``meta``:
        ``source``, ``category_hint`` (the category the text was built from)
        and ``entity_hints``, the knowledge-base entities named in ``text`` as
        ``{"id": kb-id, "start": ..., "end": ...}`` with ``text[start:end]``
        the surface form, in text order.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if not tenants:
        raise ValueError("tenants must not be empty")
    rng = random.Random(f"documents:{seed}")
    ts = DEFAULT_START_TS_MS if start_ts_ms is None else start_ts_ms
    documents: list[dict[str, object]] = []
    for i in range(n):
        if i:
            ts += rng.randint(1, 4_000)
        category = rng.choice(CATEGORIES)
        story = _fillers(rng)
        title, _ = _unmark(rng.choice(_TITLES[category]).format_map(story))
        text, entity_hints = _unmark(_compose_text(rng, category, story))
        documents.append(
            {
                "id": f"doc-{seed}-{i:07d}",
                "tenant": rng.choice(tenants),
                "ts": ts,
                "title": title,
                "text": text,
                "lang": "en",
                "meta": {
                    "source": rng.choice(_SOURCES),
                    "category_hint": category,
                    "entity_hints": entity_hints,
                },
            }
        )
    return documents


def _doc_fields(doc: Mapping[str, object]) -> tuple[str, str, int, str]:
    """Extract ``(id, tenant, ts, category)`` from a generated document."""
    doc_id = doc.get("id")
    tenant = doc.get("tenant")
    ts = doc.get("ts")
    if not isinstance(doc_id, str) or not isinstance(tenant, str):
        raise ValueError("document needs string 'id' and 'tenant'")
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise ValueError(f"document {doc_id!r} needs an integer 'ts'")
    meta = doc.get("meta")
    category = ""
    if isinstance(meta, Mapping):
        hint = meta.get("category_hint")
        if isinstance(hint, str):
            category = hint
    return doc_id, tenant, ts, category


_EVENT_TYPES = ("view", "click", "like", "purchase")
_EVENT_WEIGHTS = (70, 18, 8, 4)
_PREFERRED_SHARE = 0.85


def generate_events(
    documents: Sequence[Mapping[str, object]],
    n: int,
    *,
    seed: int = 11,
    users_per_tenant: int = 50,
) -> list[dict[str, object]]:
    """Generate ``n`` user interaction events for topic ``aimass.events``.

    Every user (``u-0001`` ... per tenant) gets one or two preferred
    categories (taken from ``meta["category_hint"]``) and about 85% of their
    interactions target documents of those categories. Each event refers to a
    document of the same tenant and is never earlier than that document.

    Args:
        documents: Documents as produced by :func:`generate_documents`.
        n: Number of events to generate (``>= 0``).
        seed: Random seed; the same seed and documents give the same events.
        users_per_tenant: Number of distinct users in each tenant.

    Returns:
        Events sorted by ``ts`` with keys ``event_id``, ``tenant``,
        ``user_id``, ``item_id``, ``type`` and ``ts``.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if users_per_tenant < 1:
        raise ValueError("users_per_tenant must be >= 1")
    if n == 0:
        return []
    if not documents:
        raise ValueError("documents must not be empty")
    rng = random.Random(f"events:{seed}")

    by_tenant: dict[str, list[tuple[str, int]]] = {}
    by_tenant_cat: dict[tuple[str, str], list[tuple[str, int]]] = {}
    for doc in documents:
        doc_id, tenant, ts, category = _doc_fields(doc)
        by_tenant.setdefault(tenant, []).append((doc_id, ts))
        by_tenant_cat.setdefault((tenant, category), []).append((doc_id, ts))

    tenants = sorted(by_tenant)
    tenant_weights = [len(by_tenant[t]) for t in tenants]
    preferences: dict[tuple[str, str], list[str]] = {}
    for tenant in tenants:
        available = sorted(c for (t, c) in by_tenant_cat if t == tenant)
        for u in range(1, users_per_tenant + 1):
            k = min(len(available), rng.choice((1, 1, 2)))
            preferences[(tenant, f"u-{u:04d}")] = rng.sample(available, k)

    raw: list[tuple[int, str, str, str, str]] = []
    for _ in range(n):
        tenant = rng.choices(tenants, weights=tenant_weights)[0]
        user_id = f"u-{rng.randint(1, users_per_tenant):04d}"
        if rng.random() < _PREFERRED_SHARE:
            category = rng.choice(preferences[(tenant, user_id)])
            pool = by_tenant_cat[(tenant, category)]
        else:
            pool = by_tenant[tenant]
        item_id, item_ts = rng.choice(pool)
        # Most interactions happen soon after publication, a few much later.
        delay_ms = int(rng.expovariate(1 / 600_000)) + rng.randint(50, 5_000)
        event_type = rng.choices(_EVENT_TYPES, weights=_EVENT_WEIGHTS)[0]
        raw.append((item_ts + delay_ms, tenant, user_id, item_id, event_type))

    raw.sort(key=lambda r: r[0])
    return [
        {
            "event_id": f"evt-{seed}-{i:07d}",
            "tenant": tenant,
            "user_id": user_id,
            "item_id": item_id,
            "type": event_type,
            "ts": ts,
        }
        for i, (ts, tenant, user_id, item_id, event_type) in enumerate(raw)
    ]


def bad_messages() -> list[tuple[bytes, str]]:
    """Return malformed ``aimass.documents`` messages and what is wrong with each.

    Every entry must be rejected by the decode/validate stage and end up in
    the dead-letter topic rather than crash the worker.
    """
    oversize = json.dumps(
        {"id": "oversize", "tenant": "acme", "ts": 1_735_689_600_000, "text": "a" * 300_000}
    ).encode()
    return [
        (b'{"id": "x", ', "invalid JSON (truncated object)"),
        (
            b'[{"id": "list-1", "tenant": "acme", "ts": 1, "text": "hello"}]',
            "JSON array, not an object",
        ),
        (b'"just a string"', "JSON string, not an object"),
        (
            b'{"id": "no-text", "tenant": "acme", "ts": 1735689600000}',
            "missing required field 'text'",
        ),
        (
            b'{"tenant": "acme", "ts": 1735689600000, "text": "no id here"}',
            "missing required field 'id'",
        ),
        (
            b'{"id": "num-tenant", "tenant": 42, "ts": 1735689600000, "text": "tenant is a number"}',
            "wrong type: 'tenant' is a number",
        ),
        (
            b'{"id": "str-ts", "tenant": "acme", "ts": "yesterday", "text": "ts is not a number"}',
            "wrong type: 'ts' is a non-numeric string",
        ),
        (
            b'{"id": "empty-text", "tenant": "acme", "ts": 1735689600000, "text": ""}',
            "empty 'text'",
        ),
        (b'{"id":"bad-utf8","tenant":"acme","ts":1,"text":"\xff\xfe"}', "invalid UTF-8 bytes"),
        (oversize, "oversize 'text' (300,000 characters)"),
        (b"\x00\x00\x00\x00", "NUL bytes only"),
        (b"", "empty body"),
    ]


def write_jsonl(records: Iterable[Mapping[str, object]], path: Path) -> int:
    """Write ``records`` to ``path`` as JSON Lines and return how many were written.

    Parent directories are created when missing; text is written as UTF-8
    without ASCII escaping.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(dict(record), ensure_ascii=False))
            fh.write("\n")
            count += 1
    return count
