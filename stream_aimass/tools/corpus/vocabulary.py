# ruff: noqa: E501  (long sentence templates are clearer on one line)
"""What the corpus generator draws from: names, places and things (many of them demo-KB
entities, some through ambiguous aliases) and the sentence and title templates of each
category, with ``{slot}`` fillers and ``[[surface|id]]`` marks for the entities they name.
Data, not code."""

from __future__ import annotations

FIRST_NAMES = (
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


LAST_NAMES = (
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
# ``CITIES`` and the football club in ``TEAMS``.
TEAMS = (
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


TOURNAMENTS = (
    "Champions Cup",
    "national cup",
    "continental championship",
    "league play-off",
    "Super Cup",
    "world qualifiers",
    "summer invitational",
    "[[World Cup|event/fifa-world-cup]]",
)


FOOTBALLERS = (
    "[[Lionel Messi|person/lionel-messi]]",
    "[[Messi|person/lionel-messi]]",
    "[[Cristiano Ronaldo|person/cristiano-ronaldo]]",
    "[[Kylian Mbappé|person/kylian-mbappe]]",
    "[[Erling Haaland|person/erling-haaland]]",
    "[[Haaland|person/erling-haaland]]",
)


TENNIS_PLAYERS = (
    "[[Novak Djokovic|person/novak-djokovic]]",
    "[[Djokovic|person/novak-djokovic]]",
    "[[Rafael Nadal|person/rafael-nadal]]",
    "[[Serena Williams|person/serena-williams]]",
    "[[Venus Williams|person/venus-williams]]",
)


CITIES = (
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


COUNTRIES = (
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


COMPANIES = (
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


BUSINESS_LEADERS = (
    "[[Warren Buffett|person/warren-buffett]]",
    "[[Jamie Dimon|person/jamie-dimon]]",
    "[[Elon Musk|person/elon-musk]]",
    "[[Jeff Bezos|person/jeff-bezos]]",
    "[[Bill Gates|person/bill-gates]]",
)


CENTRAL_BANKS = (
    "the [[Federal Reserve|org/federal-reserve]]",
    "the [[Fed|org/federal-reserve]]",
    "the [[European Central Bank|org/ecb]]",
    "the [[ECB|org/ecb]]",
    "the [[Bank of England|org/bank-of-england]]",
    "the [[Bank of Japan|org/bank-of-japan]]",
)


TECH_COMPANIES = (
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


CHIPMAKERS = (
    "[[TSMC|company/tsmc]]",
    "[[Intel|company/intel]]",
    "[[Samsung|company/samsung]]",
    "[[Micron|company/micron]]",
    "[[GlobalFoundries|company/globalfoundries]]",
    "[[SK Hynix|company/sk-hynix]]",
)


TECH_LEADERS = (
    "[[Jensen Huang|person/jensen-huang]]",
    "[[Sam Altman|person/sam-altman]]",
    "[[Satya Nadella|person/satya-nadella]]",
    "[[Sundar Pichai|person/sundar-pichai]]",
    "[[Tim Cook|person/tim-cook]]",
)


FUNDS = (
    "Blackridge Capital",
    "Aurora Partners",
    "Crescent Equity",
    "Ironwood Ventures",
    "Summit Harbor Capital",
    "Polaris Growth Fund",
)


PRODUCTS = (
    "Nova X2 smartphone",
    "Aero 14 laptop",
    "Pulse smartwatch",
    "Vista VR headset",
    "Atlas tablet",
    "Echo Pro earbuds",
    "Orbit home speaker",
    "Spark 5G router",
)


CHIPS = ("eight-core", "neural", "ARM-based", "low-power", "data centre", "graphics")


SOFTWARE = (
    "[[Python|product/python]]",
    "[[JavaScript|product/javascript]]",
    "[[Rust|product/rust]]",
    "[[Java|product/java]]",
    "[[Linux|product/linux]]",
    "[[Swift|product/swift]]",
    "database",
    "web server",
)


PARTIES = (
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


LEADERS = (
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


BLOCS = (
    "the [[United Nations|org/united-nations]]",
    "the [[European Union|org/european-union]]",
    "the [[EU|org/european-union]]",
    "the [[UN|org/united-nations]]",
)


TELESCOPES = (
    "[[James Webb Space Telescope|telescope/jwst]]",
    "[[Very Large Telescope|telescope/vlt]]",
    "[[Hubble Space Telescope|telescope/hubble]]",
    "[[Hubble|telescope/hubble]] telescope",
    "[[Atacama Large Millimeter Array|telescope/alma]]",
    "[[Vera Rubin Observatory|telescope/vera-rubin]]",
    "[[Euclid telescope|telescope/euclid]]",
)


INSTITUTIONS = (
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


LABS = (
    "[[CERN|org/cern]]",
    "[[Fermilab|org/fermilab]]",
    "the DESY laboratory",
    "the Brookhaven laboratory",
)


FIELDS = (
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


PLANETS = (
    "[[Mars|planet/mars]]",
    "[[Jupiter|planet/jupiter]]'s moon [[Europa|moon/europa]]",
    "[[Saturn|planet/saturn]]'s moon [[Titan|moon/titan]]",
    "[[Venus|planet/venus]]",
    "[[Mercury|planet/mercury]]",
)


MISSIONS = ("Horizon", "Pathfinder II", "Aurora", "Meridian", "Voyager Next")


SPACE_AGENCIES = (
    "[[NASA|org/nasa]]",
    "the [[European Space Agency|org/esa]]",
    "[[ESA|org/esa]]",
)


SCIENTISTS = (
    "[[Albert Einstein|person/albert-einstein]]",
    "[[Einstein|person/albert-einstein]]",
    "[[Isaac Newton|person/isaac-newton]]",
    "[[Darwin|person/charles-darwin]]",
    "[[Stephen Hawking|person/stephen-hawking]]",
    "[[Max Planck|person/max-planck]]",
)


DISEASES = (
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


CHRONIC = (
    "[[heart disease|disease/heart-disease]]",
    "[[type 2 diabetes|disease/type-2-diabetes]]",
    "[[Alzheimer's disease|disease/alzheimers]]",
    "[[stroke|disease/stroke]]",
    "high blood pressure",
    "colon cancer",
    "depression",
    "[[asthma|disease/asthma]]",
)


VECTOR_DISEASES = (
    "[[dengue fever|disease/dengue]]",
    "[[malaria|disease/malaria]]",
    "[[West Nile virus|disease/west-nile]]",
    "[[Zika virus|disease/zika]]",
)


DRUGS = (
    "Veltrazine",
    "Corimab",
    "Nexaprol",
    "Duravir",
    "Solentra",
    "Ambrolix",
    "Tervacept",
    "Lunaflox",
)


DRUGMAKERS = (
    "[[Pfizer|company/pfizer]]",
    "[[Moderna|company/moderna]]",
    "[[AstraZeneca|company/astrazeneca]]",
    "[[Novartis|company/novartis]]",
    "[[Roche|company/roche]]",
    "[[Novo Nordisk|company/novo-nordisk]]",
    "[[Bayer|company/bayer]]",
    "Helixa Pharma",
)


REGULATORS = (
    "[[FDA|org/fda]]",
    "[[European Medicines Agency|org/ema]]",
    "[[EMA|org/ema]]",
)


HEALTH_BODIES = (
    "The [[World Health Organization|org/who]]",
    "The [[WHO|org/who]]",
    "[[UNICEF|org/unicef]]",
    "The [[CDC|org/cdc]]",
)


HOSPITALS = (
    "St Mary's Hospital",
    "the City General Hospital",
    "the Royal Infirmary",
    "the University Medical Centre",
    "Mercy Children's Hospital",
    "the National Heart Institute",
)


FILMS = (
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


SHOWS = (
    "Northern Lights",
    "The Understudy",
    "Saltwater",
    "Kingdom of Clocks",
    "Night Shift",
    "The Archivists",
    "Parallel Lines",
)


ARTISTS = (
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


STARS = (
    "[[Taylor Swift|person/taylor-swift]]",
    "[[Beyoncé|person/beyonce]]",
    "[[Adele|person/adele]]",
    "[[Paul McCartney|person/paul-mccartney]]",
    "[[Tom Hanks|person/tom-hanks]]",
    "[[Meryl Streep|person/meryl-streep]]",
    "[[Harrison Ford|person/harrison-ford]]",
    "[[Paris Hilton|person/paris-hilton]]",
)


STUDIOS = (
    "[[Netflix|company/netflix]]",
    "[[Disney|company/disney]]",
    "[[Amazon|company/amazon]]",
    "[[Sony|company/sony]]",
)


BANDS = (
    "The Velvet Drifters",
    "Glass Animals Club",
    "Northern Static",
    "Paper Kites Union",
    "Luna Parade",
    "The Midnight Ferry",
    "[[Coldplay|band/coldplay]]",
)


ALBUMS = (
    "Golden Hour",
    "Static Bloom",
    "Letters Home",
    "Blue Hours",
    "Wildfire Season",
    "Concrete Gardens",
)


FESTIVALS = (
    "[[Venice Film Festival|event/venice-film-festival]]",
    "[[Toronto International Film Festival|event/tiff]]",
    "[[Berlinale|event/berlinale]]",
    "[[Sundance Film Festival|event/sundance]]",
    "[[Cannes Film Festival|event/cannes-film-festival]]",
    "[[Glastonbury Festival|event/glastonbury]]",
)


VENUES = (
    "[[Wembley Stadium|place/wembley-stadium]]",
    "[[Madison Square Garden|place/madison-square-garden]]",
    "the O2 Arena",
    "the Tokyo Dome",
    "the Hollywood Bowl",
    "the Olympiastadion",
)


WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


MONTHS = (
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


ORDINALS = ("second", "third", "fourth", "fifth", "sixth")


RANKS = ("second", "third", "fourth", "fifth")


SOURCES = (
    "newswire",
    "rss:worlddesk",
    "rss:citypaper",
    "partner-feed",
    "press-release",
    "web-crawl",
    "editorial",
)

SENTENCES: dict[str, tuple[str, ...]] = {
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


TITLES: dict[str, tuple[str, ...]] = {
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
