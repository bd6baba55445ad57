"""Word and name lists for the synthetic world generator (:mod:`reputation.generate`).

Plain data, no logic. Lists are tuples so that they cannot be mutated by accident; the generator
derives everything else (phrase pools, spun spam templates) from them with seeded random numbers.
"""

from __future__ import annotations

FIRST_NAMES: tuple[str, ...] = (
    "james", "mary", "john", "patricia", "robert", "jennifer", "michael", "linda", "william", "elizabeth",
    "david", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah", "charles", "karen",
    "daniel", "nancy", "matthew", "lisa", "anthony", "betty", "mark", "margaret", "donald", "sandra",
    "steven", "ashley", "paul", "kimberly", "andrew", "emily", "joshua", "donna", "kenneth", "michelle",
    "kevin", "dorothy", "brian", "carol", "george", "amanda", "timothy", "melissa", "ronald", "deborah",
    "edward", "stephanie", "jason", "rebecca", "jeffrey", "sharon", "ryan", "laura", "jacob", "cynthia",
    "gary", "kathleen", "nicholas", "amy", "eric", "angela", "jonathan", "shirley", "stephen", "anna",
    "larry", "brenda", "justin", "pamela", "scott", "emma", "brandon", "nicole", "benjamin", "helen",
    "samuel", "samantha", "gregory", "katherine", "alexander", "christine", "frank", "debra", "patrick",
    "rachel", "raymond", "carolyn", "jack", "janet", "dennis", "catherine", "jerry", "maria", "tyler",
    "heather", "aaron", "diane", "jose", "ruth", "adam", "julie", "nathan", "olivia", "henry", "joyce",
    "douglas", "virginia", "zachary", "victoria", "peter", "kelly", "kyle", "lauren", "ethan",
    "christina", "walter", "joan", "noah", "evelyn", "jeremy", "judith", "christian", "megan", "keith",
    "andrea", "roger", "cheryl", "terry", "hannah", "gerald", "jacqueline", "harold", "martha", "sean",
    "gloria", "austin", "teresa", "carl", "ann", "arthur", "sara", "lawrence", "madison", "dylan",
    "frances", "jesse", "kathryn", "jordan", "janice", "bryan", "jean", "billy", "abigail", "joe",
    "alice", "bruce", "julia", "gabriel", "judy", "logan", "sophia", "albert", "grace", "willie",
    "denise", "alan", "amber", "juan", "doris", "wayne", "marilyn", "elijah", "danielle", "randy",
    "beverly", "roy", "isabella", "vincent", "theresa", "ralph", "diana", "eugene", "natalie", "russell",
    "brittany", "bobby", "charlotte", "mason", "marie", "philip", "kayla", "louis", "alexis", "lucas",
    "lori", "liam", "mia", "oliver", "ava", "elena", "mateo", "sofia", "luca", "chiara", "jonas", "lea",
    "finn", "mila", "felix", "clara", "hugo", "ines", "leon", "nora", "arjun", "priya", "rahul", "ananya",
    "wei", "mei", "hiroshi", "yuki", "kenji", "sakura", "omar", "layla", "yusuf", "fatima", "ivan",
    "olga", "dmitri", "katya", "lars", "ingrid", "sven", "astrid",
)  # fmt: skip

LAST_NAMES: tuple[str, ...] = (
    "smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis", "rodriguez",
    "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor", "moore",
    "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez", "clark", "ramirez",
    "lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott", "torres", "nguyen",
    "hill", "flores", "green", "adams", "nelson", "baker", "hall", "rivera", "campbell", "mitchell",
    "carter", "roberts", "gomez", "phillips", "evans", "turner", "diaz", "parker", "cruz", "edwards",
    "collins", "reyes", "stewart", "morris", "morales", "murphy", "cook", "rogers", "gutierrez", "ortiz",
    "morgan", "cooper", "peterson", "bailey", "reed", "kelly", "howard", "ramos", "kim", "cox", "ward",
    "richardson", "watson", "brooks", "chavez", "wood", "james", "bennett", "gray", "mendoza", "ruiz",
    "hughes", "price", "alvarez", "castillo", "sanders", "patel", "myers", "long", "ross", "foster",
    "jimenez", "powell", "jenkins", "perry", "russell", "sullivan", "bell", "coleman", "butler",
    "henderson", "barnes", "gonzales", "fisher", "vasquez", "simmons", "romero", "jordan", "patterson",
    "alexander", "hamilton", "graham", "reynolds", "griffin", "wallace", "moreno", "west", "cole",
    "hayes", "bryant", "herrera", "gibson", "ellis", "tran", "medina", "aguilar", "stevens", "murray",
    "ford", "castro", "marshall", "owens", "harrison", "fernandez", "mcdonald", "woods", "washington",
    "kennedy", "wells", "vargas", "henry", "chen", "freeman", "webb", "tucker", "guzman", "burns",
    "crawford", "olson", "simpson", "porter", "hunter", "gordon", "mendez", "silva", "shaw", "snyder",
    "mason", "dixon", "munoz", "hunt", "hicks", "holmes", "palmer", "wagner", "black", "robertson",
    "boyd", "rose", "stone", "salazar", "fox", "warren", "mills", "meyer", "rice", "schmidt", "garza",
    "daniels", "ferguson", "nichols", "stephens", "soto", "weaver", "ryan", "gardner", "payne", "grant",
    "dunn", "kelley", "spencer", "hawkins", "arnold", "pierce", "hansen", "peters", "santos", "hart",
    "bradley", "knight", "elliott", "cunningham", "duncan", "armstrong", "hudson", "carroll", "lane",
    "riley", "andrews", "alvarado", "ray", "delgado", "berry", "perkins", "hoffman", "johnston",
    "matthews", "pena", "richards", "willis", "carpenter", "lawrence", "sandoval", "mueller", "schneider",
    "fischer", "weber", "becker", "rossi", "russo", "ferrari", "esposito", "bianchi", "romano", "dubois",
    "lefebvre", "moreau", "laurent", "novak", "horvat", "kowalski", "nowak", "ivanov", "petrov",
    "sokolov", "tanaka", "suzuki", "takahashi", "watanabe", "yamamoto", "sato", "kumar", "singh",
    "sharma", "gupta", "wang", "li", "zhang", "liu", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun",
    "ma", "lindqvist", "johansson", "nielsen", "hansen", "berg", "dahl",
)  # fmt: skip

EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "gmail.com", "gmail.com", "outlook.com", "yahoo.com", "hotmail.com", "icloud.com",
    "proton.me", "gmx.net", "mail.com", "web.de", "fastmail.com", "aol.com", "zoho.com",
)  # fmt: skip

WORK_DOMAINS: tuple[str, ...] = (
    "acme-corp.com", "northwind.io", "contoso.net", "globex.com", "initech.org", "umbrella-labs.com",
    "hooli.io", "vandelay.biz", "wonka-industries.com", "stark-ind.com", "wayne-ent.com", "cyberdyne.ai",
    "soylent.co", "tyrell-corp.com", "massive-dynamic.com", "pied-piper.io", "bluth-company.com",
    "dunder-mifflin.com",
)  # fmt: skip

SPAMMER_EMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "gmail.com", "outlook.com", "mail.ru", "yandex.com", "protonmail.com", "gmx.com",
    "yahoo.com", "inbox.lv", "tutanota.com",
)  # fmt: skip

DISPOSABLE_EMAIL_DOMAINS: tuple[str, ...] = (
    "tempmail.dev", "10minutemail.net", "guerrillamail.org", "throwaway.email", "mailinator.com",
    "sharklasers.com", "yopmail.net", "trashmail.io",
)  # fmt: skip

HANDLE_SUFFIX_WORDS: tuple[str, ...] = (
    "official", "real", "hq", "biz", "pro", "team", "online", "x",
)  # fmt: skip

# Honest conversation grammar: phrase = verb + object (+ tail); message = opener + 1..3 phrases + closer.
HONEST_OPENERS: tuple[str, ...] = (
    "", "", "", "", "", "hey, ", "hi! ", "hey there, ", "morning! ", "so ", "ok so ", "btw ", "lol ",
    "omg ", "hmm ", "yo ", "quick one: ", "sorry for the late reply, ", "good news, ", "listen, ",
    "guess what, ", "random thought: ", "honestly ", "ugh ", "haha ", "oh and ", "also ",
)  # fmt: skip

REPLY_OPENERS: tuple[str, ...] = (
    "", "", "", "yes ", "yeah ", "sure, ", "haha ", "lol ", "ok ", "sounds good, ", "no way, ",
    "totally, ", "true, ", "thanks! ", "aw ", "nice, ", "hmm not sure, ", "great, ", "right? ",
    "I know, ", "same here, ", "yep ", "oh really? ", "perfect, ", "cool, ",
)  # fmt: skip

HONEST_VERBS: tuple[str, ...] = (
    "saw", "heard", "found", "tried", "cooked", "watched", "read", "finished", "started", "booked",
    "missed", "loved", "hated", "fixed", "bought", "sold", "borrowed", "visited", "called", "texted",
    "met", "planned", "cancelled", "moved", "painted", "cleaned", "baked", "ordered", "packed", "forgot",
    "remembered", "picked", "dropped", "shared", "posted", "signed", "joined", "left", "skipped",
    "walked", "drove", "biked", "ran", "swam", "climbed", "played", "lost", "won", "wrote", "edited",
    "recorded", "printed", "downloaded", "updated", "installed", "broke",
)  # fmt: skip

HONEST_DETS: tuple[str, ...] = (
    "the", "that", "a", "my", "your", "our", "this", "his", "her", "their", "some", "another",
)  # fmt: skip

HONEST_ADJS: tuple[str, ...] = (
    "new", "old", "little", "big", "weird", "funny", "amazing", "terrible", "tiny", "huge", "cheap",
    "fancy", "quiet", "noisy", "cozy", "rainy", "sunny", "cold", "warm", "spicy", "sweet", "bitter",
    "fresh", "stale", "early", "late", "long", "short", "quick", "slow", "lovely", "awful", "strange",
    "blue", "red", "green", "yellow", "vintage", "local", "secret", "free", "busy", "lazy", "crazy",
    "perfect", "random", "second",
)  # fmt: skip

HONEST_NOUNS: tuple[str, ...] = (
    "movie", "book", "recipe", "pasta", "pizza", "concert", "ticket", "train", "bus", "flight", "hotel",
    "apartment", "couch", "bike", "car", "kitchen", "garden", "plant", "dog", "cat", "puppy", "kitten",
    "jacket", "shoes", "laptop", "phone", "charger", "camera", "photo", "album", "song", "playlist",
    "podcast", "game", "match", "race", "hike", "trail", "beach", "lake", "park", "museum", "gallery",
    "cafe", "bakery", "bar", "restaurant", "market", "party", "wedding", "birthday", "dinner", "lunch",
    "breakfast", "brunch", "coffee", "tea", "cake", "cookie", "soup", "salad", "burger", "sandwich",
    "report", "essay", "exam", "class", "lecture", "meeting", "shift", "deadline", "project",
    "presentation", "spreadsheet", "invoice", "form", "letter", "package", "parcel", "gift", "present",
    "card", "poster", "painting", "sweater", "scarf", "umbrella", "keyboard", "monitor", "printer",
    "router", "lamp", "chair", "table", "shelf", "rug", "mirror", "window", "door", "key", "wallet",
)  # fmt: skip

HONEST_TAILS: tuple[str, ...] = (
    "yesterday", "today", "last night", "this morning", "on sunday", "last week", "again", "finally",
    "at the weekend", "after work", "before lunch", "with mum", "with the kids", "at my place",
    "downtown", "near the station", "for ages", "twice", "by accident", "on my own", "with sam",
    "with the team", "in the rain", "at the market", "for the first time", "online", "this time",
    "on the way home", "at the office", "tonight", "tomorrow", "next week", "in march", "around noon",
)  # fmt: skip

HONEST_CLOSERS: tuple[str, ...] = (
    "", "", "", "", ".", ".", "!", "!!", "?", " :)", " :D", " haha", " lol", " xx", " 😂", " 🙂", " 🙏",
    " ❤️", " 👍", "...", " right?", " what do you think?", " wanna come?", " see you soon",
    " call me later", " miss you", " let me know", " no rush", " talk soon", " cheers",
)  # fmt: skip

HONEST_CONNECTORS: tuple[str, ...] = (
    " and ", ", then ", ". also ", " but ", ". ", ", ", " so ", " while ", " because ", ". anyway ",
)  # fmt: skip

CHANNEL_OPENERS: tuple[str, ...] = (
    "", "", "", "great video! ", "first time posting here. ", "quick question: ", "update: ",
    "does anyone know why ", "tip: ", "PSA: ", "agree with the above, ", "unpopular opinion: ",
    "can confirm, ", "thanks for sharing, ", "loved this part: ", "counterpoint: ", "fwiw ",
)  # fmt: skip

HONEST_URL_DOMAINS: tuple[str, ...] = (
    "youtube.com", "en.wikipedia.org", "github.com", "nytimes.com", "bbc.co.uk", "maps.google.com",
    "spotify.com", "imdb.com", "reddit.com", "theguardian.com", "allrecipes.com", "airbnb.com",
)  # fmt: skip

# Spam: each sentence has {a|b|c} synonym groups. A template fills every group once (its base text);
# spun variants re-draw some of the groups.
SPAM_THEMES: dict[str, tuple[str, ...]] = {
    "giveaway": (
        "{Congratulations|Congrats|Great news}! You have been {selected|chosen|picked} for a {free|complimentary|no-cost} {gift card|voucher|reward}.",  # noqa: E501
        "{Only|Just} {a few|a handful of|limited} {winners|spots|prizes} {remain|are left|are still available} {today|this week|right now}.",  # noqa: E501
        "{Claim|Collect|Grab} your {prize|reward|gift} before it {expires|runs out|is gone}.",
        "No {purchase|payment|credit card} {needed|required|necessary}.",
    ),
    "crypto": (
        "{Earn|Make|Generate} {up to|as much as|over} {5000|3000|8000} USD a {week|month} with our {crypto|bitcoin|blockchain} {bot|system|platform}.",  # noqa: E501
        "{Join|Sign up with|Start with} {thousands of|many|hundreds of} {investors|traders|members} {already|who are already} {profiting|earning|winning}.",  # noqa: E501
        "{Guaranteed|Proven|Risk-free} {returns|profits|gains} {every day|daily|each week}.",
        "{Start|Begin|Get started} with {only|just} {250|100|199} USD {today|now}.",
    ),
    "reviews": (
        "{Sorry|Apologies} for the {mass|bulk|group} message, I {need|am looking for|want} {five stars|5 star reviews|good ratings} for my {shop|store|app}!!!!!",  # noqa: E501
        "{Please|Kindly|Pls} {leave|drop|give} a {quick|short|fast} {review|rating} {it takes|it only takes|just} {one minute|30 seconds|a moment}.",  # noqa: E501
        "I {will|can|would} {return|repay|give back} the {favour|favor|support} {right away|immediately|for sure}.",  # noqa: E501
        "{Every|Each|Any} {star|review|rating} {helps|counts|matters} {a lot|so much|hugely}!",
    ),
    "webinar": (
        "{Join|Attend|Register for} our {free|exclusive|live} {webinar|masterclass|online workshop} on {growth hacking|passive income|lead generation}.",  # noqa: E501
        "{Seats|Places|Spots} are {limited|filling up fast|almost gone}, {reserve|book|secure} yours {now|today|immediately}.",  # noqa: E501
        "{Learn|Discover|See} the {secret|method|strategy} {top|leading|successful} {experts|CEOs|marketers} {use|rely on|don't share}.",  # noqa: E501
        "{Bonus|Extra|Special} {ebook|checklist|toolkit} for {all|every|each} {attendees|participants|registrants}.",  # noqa: E501
    ),
    "pharma": (
        "{Cheap|Discount|Low-cost} {meds|pills|medication} {without|with no|no need for a} {prescription|doctor visit|rx}.",  # noqa: E501
        "{Fast|Discreet|Quick} {shipping|delivery} {worldwide|to any country|anywhere}.",
        "{Save|Get} {up to|as much as} {80|70|90}% {off|discount} {today only|this week|while stocks last}.",
        "{Order|Buy|Purchase} {now|today} and {get|receive} a {free|bonus} {sample|trial|pack}.",
    ),
    "loans": (
        "{Need|Looking for|Want} {cash|money|a loan} {fast|quickly|today}? {Bad credit|Low credit|No credit} is {OK|fine|no problem}.",  # noqa: E501
        "{Get|Receive} {up to|as much as} {10000|5000|20000} USD {in minutes|within an hour|same day}.",
        "{Instant|Immediate|Quick} {approval|decision} {guaranteed|assured|promised}.",
        "{Apply|Sign up|Register} {online|now|in 2 minutes} with {no|zero} {paperwork|fees|hassle}.",
    ),
    "seo": (
        "I {noticed|saw|found} your {website|profile|page} is not {ranking|showing up|visible} on {Google|search engines|page one}.",  # noqa: E501
        "{We|Our team|My agency} can {get|bring|drive} you {10x|more|massive} {traffic|leads|followers} {fast|in weeks|quickly}.",  # noqa: E501
        "{Reply|Answer|Write back} {YES|now|today} for a {free|no-cost|complimentary} {audit|analysis|report}.",  # noqa: E501
        "{Special|Limited|Exclusive} {offer|deal|price} {this month|this week|for you only}.",
    ),
    "dating": (
        "{Hi|Hey|Hello} dear, I {saw|found|came across} your {profile|photos|page} and {liked|loved|enjoyed} it.",  # noqa: E501
        "{Lonely|Single|Beautiful} {girls|people|singles} {near you|in your area|nearby} {want|are waiting|would love} to {chat|talk|meet}.",  # noqa: E501
        "{Check|See|View} my {private|secret|hidden} {photos|pics|profile} here.",
        "{Don't|Do not} {wait|hesitate|be shy}, {message|text|write} me {soon|today|back}.",
    ),
    "sales": (
        "{Boost|Grow|Scale} your {business|sales|revenue} with our {all-in-one|AI-powered|cloud} {CRM|platform|solution}.",  # noqa: E501
        "{Book|Schedule|Grab} a {15-minute|quick|free} {demo|call|consultation} with {me|our team|an expert}.",  # noqa: E501
        "{Companies|Teams|Businesses} like yours {saw|got|achieved} {3x|40%|double} {growth|ROI|pipeline}.",
        "{Limited|Special|Early-bird} {pricing|discount|offer} {ends|expires|closes} {Friday|soon|this week}.",  # noqa: E501
    ),
}

SPAM_CTAS: tuple[str, ...] = (
    "{Click|Visit|Go to|Tap} {url} {now|today|to claim|for details}.",
    "{Details|More info|Everything} {here|at|on}: {url}", "{Sign up|Register|Join} {at|on|via} {url}",
)  # fmt: skip

SPAM_DOMAIN_WORDS: tuple[str, ...] = (
    "win", "prize", "deal", "bonus", "cash", "crypto", "coin", "profit", "rich", "fast", "easy", "free",
    "gift", "promo", "offer", "top", "best", "lucky", "smart", "secure", "vip", "club", "hub", "zone",
    "pro", "max", "mega", "super", "star", "gold", "elite", "boost", "growth", "lead", "seo", "rank",
    "meds", "health", "pharma", "loan", "credit", "money", "pay", "trade", "invest", "yield", "alpha",
    "moon", "rocket", "safe", "trust",
)  # fmt: skip

SPAM_TLDS: tuple[str, ...] = (
    "top", "xyz", "click", "info", "online", "site", "biz", "live", "shop", "io",
)  # fmt: skip

SPAM_REPLIES: tuple[str, ...] = (
    "stop", "STOP", "who is this?", "who are you?", "unsubscribe", "??", "not interested",
    "please stop messaging me", "how did you get my contact?", "spam", "lol no", "report", "no thanks",
    "remove me", "do I know you?",
)  # fmt: skip

SUBSCRIBE_TEXTS: tuple[str, ...] = (
    "subscribe", "please add me to your list", "sign me up please", "hi, I'd like to subscribe",
    "can you add me to the mailing list?", "interested, please keep me posted", "subscribe me thanks",
    "hello! saw your post, please include me", "count me in for the updates",
)  # fmt: skip

BULK_REPLY_TEXTS: tuple[str, ...] = (
    "thanks!", "thanks for sharing", "great issue, thanks", "unsubscribe please", "interested!",
    "can you send more details?", "see you there", "is this still open?", "love this, keep it up",
    "please remove me from the list", "will forward to my team", "thank you, very useful",
    "what time does it start?", "applied, thanks!", "could we have a quick call?",
)  # fmt: skip

BULK_KINDS: tuple[str, ...] = (
    "newsletter", "recruiter", "events",
)  # fmt: skip

NEWSLETTER_TOPICS: tuple[str, ...] = (
    "local news", "gardening", "home cooking", "running", "photography", "board games", "jazz",
    "indie games", "personal finance", "cycling", "parenting", "bird watching", "open source", "climate",
    "history", "chess", "coffee", "travel deals", "urban sketching", "woodworking",
)  # fmt: skip

NEWSLETTER_ITEMS: tuple[str, ...] = (
    "three stories we loved", "a reader question answered", "the best links of the week",
    "an interview with a long-time member", "our community meetup recap", "five tools worth trying",
    "a deep dive into last month's survey", "what changed and why", "a short guide for beginners",
    "photos from our readers", "upcoming dates for your calendar", "a look behind the scenes",
)  # fmt: skip

JOB_ROLES: tuple[str, ...] = (
    "backend engineer", "data analyst", "product designer", "nurse", "account manager", "warehouse lead",
    "frontend developer", "project manager", "accountant", "sales associate", "teacher",
    "mechanical engineer", "customer support specialist", "marketing coordinator",
)  # fmt: skip

EVENT_NAMES: tuple[str, ...] = (
    "community meetup", "spring fair", "charity run", "book club evening", "coding night", "photo walk",
    "open mic", "farmers market", "startup breakfast", "board game night", "alumni reunion",
    "film screening", "yoga in the park", "repair cafe", "tech talk",
)  # fmt: skip

CITIES: tuple[str, ...] = (
    "Berlin", "Lisbon", "Austin", "Toronto", "Leeds", "Lyon", "Porto", "Denver", "Oslo", "Dublin",
    "Melbourne", "Madrid", "Seattle", "Prague", "Boston", "Milan", "Zurich", "Krakow",
)  # fmt: skip

WEEKDAY_NAMES: tuple[str, ...] = (
    "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
)  # fmt: skip
