"""Word lists the detector decides with: given names and surnames (the US census lists that
the ``names`` package ships, plus common names the 1990 census misses), the words that look
like names but are not (ordinary words, brands), and the street words of an address.

Loaded once, on first use: ``import voyce_assets.privacy.pii`` reads no file.
"""

from __future__ import annotations

import functools


def words(text: str) -> list[str]:
    """The words of a list written as text."""
    return text.split()


# How much of each census list counts: the rare tail is full of ordinary words ("in", "so",
# "many", "love"); the cut keeps > 90% of the people the census counted.
FIRST_NAME_RANK = {"first:female": 1800, "first:male": 900}
LAST_NAME_RANK = 20000

# Given names and surnames common among customers that a 1990 US census list lacks or ranks
# in its tail (South Asian, Middle Eastern, East Asian, African, European).
EXTRA_FIRST = words("""
aarav aditi aditya ahmed ahmad aisha akash ali alia amir amit anil anjali ankit arjun asha
ayesha deepa deepak divya fatima faisal farah ganesh gaurav hamza hassan hussein imran
ishaan jaya kabir karan kavya khalid kiran krishna leila mahmoud meera mohammed mohammad
muhammad mustafa nadia naveen neha nikhil nisha omar pooja pradeep prakash pranav priya
rahul raj rajesh rakesh ravi reza rohan sachin samir sanjay sara sunil suresh tariq usha
vijay vikram yasmin youssef zara zainab zoya
aiko akira chen hana hiroshi jin jun kenji li mei min ming sakura wei xin yuki yuna
amara chidi chinedu kwame kofi ngozi oluwaseun tunde zanele
aoife bjorn carlos diego giulia ines jorge lars lucia mateo matteo niamh oisin pablo siobhan
sven zoe liam noah ethan mason logan aiden jayden olivia ava chloe mia harper madison
yusuf yousef ibrahim abdul abdullah ali omar aliyah amina khadija maryam mariam fatma
mehmet emre ayse elif lakshmi lakshman sita shreya swati sneha rekha radha ramesh mahesh
dinesh manoj vinod ashok arun varun tarun rohit sumit amit ajay vivek harpreet gurpreet
manpreet jaspreet simran navjot baljit kamal nasser rashid said samira yara layla noor
huda rania dmitri sergei olga natasha irina svetlana katya ivan oleksandr andriy bogdan
piotr tomasz agnieszka katarzyna magdalena joao thiago matheus beatriz camila valentina
sofia isabella santiago sebastian alejandro javier joaquin ximena guadalupe lupita
""")
EXTRA_LAST = words("""
patel khan sharma singh gupta kumar shah reddy rao iyer nair mehta joshi chopra malik
hussain ahmed rahman ali chaudhry qureshi siddiqui nguyen tran pham le kim park choi
chen wang zhang liu yang huang zhao wu zhou xu sun tanaka sato suzuki takahashi okafor
adeyemi mensah osei oconnor omalley murphy kowalski novak muller schmidt rossi russo
""")

# Names that are also ordinary words (or start sentences as such: "Will someone...",
# "Mark my words", "Grace period"): a name only where a cue says so ("the agent Will").
AMBIGUOUS = frozenset(
    words("""
will mark bill may june april august hope grace faith joy rose lily daisy iris ivy holly
ruby pearl amber crystal dawn summer autumn winter sunny sandy rusty chuck pat sue art jack
frank rich guy ray drew gene dean dale glen cliff rod sky storm lane carol don jean kit max
miles page penny chance chase hunter mason cash major king prince duke earl sterling
harmony melody destiny trinity precious angel heaven star honey sugar candy brandy ginger
olive violet hazel fern willow sage river brook robin wren jay drake bud buck chip dusty
happy lucky long young price lord bishop judge white black brown green gray grey reed
ward hall wade nick sam al ed will bob kelly terry misty patience charity mercy
destiny justice royal rich
""")
)

# Of those, the ones that are common surnames too ("Rachel Brown", "Greg King").
SURNAMES_TOO = frozenset(
    words("""
brown white green black gray grey young long price king hall ward reed wade lord bishop
rich hunter mason chase page lane dean dale rose grace frank major
""")
)

# Products, companies and assistants named like people ("Alexa", "Chase", "Wells Fargo").
BRANDS = frozenset(
    words("""
apple google chase amazon alexa siri cortana microsoft samsung paypal venmo zelle uber lyft
spotify netflix disney hulu ford tesla toyota honda dell wells fargo jordan nike adidas visa
mastercard amex discover target walmart costco kroger verizon sprint comcast xfinity
hilton marriott delta mercedes porsche cadillac chevy chevrolet dodge jeep kia hyundai lexus
audi bmw volvo subaru nissan mazda hp lenovo asus acer sony nintendo xbox playstation
instagram facebook whatsapp tiktok youtube twitter linkedin snapchat pinterest reddit
dropbox slack zoom teams outlook gmail yahoo hotmail icloud android iphone ipad macbook
windows linux office excel word kindle roku fitbit peloton doordash grubhub instacart
airbnb expedia booking etsy ebay shopify stripe square klarna afterpay affirm revolut
monzo barclays lloyds hsbc natwest santander citi citibank capital wendy mcdonald pepper
""")
)

# Words that never start or continue a name: function words, and the words feedback puts
# where a name could stand ("ask for help", "the agent was", "I'm calling").
STOP = frozenset(
    words("""
a about above after again against all almost also always am an and another any anybody
anyone anything anyway are aren around as at away back bad be because been before being
below best better between both but by can cannot could couldn did didn do does doesn doing
done down during each either else enough even ever every everybody everyone everything few
first for from further get gets getting give go goes going gone good got great had has have
having he her here hers herself him himself his how however i if im in into is isn it its
itself just last least less let like made make many me might mine more most much must my
myself never new next no nobody none nor not nothing now of off often oh ok okay old on once
one only or other others our ours ourselves out over own please pretty quite rather really
said same say says see she should since so some somebody someone something sometimes soon
still such sure than thank thanks that the their theirs them themselves then there these
they thing things this those though through to today too tomorrow under until up upon us
very was wasn way we well were what whatever when where whether which while who whom whose
why will with without won would yes yesterday yet you your yours yourself yourselves
hi hello hey dear sir madam folks guys team everyone
help support service services customer customers manager managers supervisor agent agents
rep reps representative staff person people someone somebody anyone guy lady woman man
gentleman girl boy department desk center centre line phone call calls called calling
email mail number address account card refund money order orders app website site store
shop branch company bank billing payment subscription problem issue issues question
complaint complaints time times minute minutes hour hours day days week weeks month months
year years calling writing trying going looking waiting asking hoping wondering glad happy
sad upset angry annoyed frustrated disappointed satisfied pleased sorry afraid tired done
fine unhappy confused worried concerned ready able unable here there back again later
someone else really very so too also just still even not never always usually
absolutely completely totally honestly seriously basically actually literally
ridiculous unacceptable terrible awful horrible amazing awesome excellent fantastic great
wonderful lovely nice rude polite helpful unhelpful friendly useless quick slow late early
cancelling canceling leaving switching moving paying done finished
sent send sending told tell telling said saying asked ask asking speak spoke spoken talk
talked talking chat chatted chatting named call
sales accounts reception returns shipping delivery dispatch finance legal marketing
operations technical tech hr admin engineering billing
hung kept put transferred refused promised gave took made left came went answered helped
explained fixed tried started stopped hangs keeps puts
monday tuesday wednesday thursday friday saturday sunday january february march
i'm it's that's there's what's let's don't can't won't isn't wasn't didn't doesn't couldn't
wouldn't shouldn't i've i'd i'll you're we're they're he's she's you've we've they've
""")
)
# Words of a town's name that are ordinary words elsewhere ("New York", "Fort Worth").
TOWN_WORDS = frozenset(
    words(
        "new san los las saint st fort port mount north south east west upper lower great little old el la"
    )
)
STOP = STOP - {"will"}  # "will" is AMBIGUOUS: a name only after a cue

# Places named like people ("flew to Austin", "the Madison store"): a name only after a cue.
PLACES = frozenset(
    words("""
austin dallas houston tyler madison jackson victoria denver phoenix orlando charlotte
savannah florence lincoln washington chester kent sydney paris georgia virginia carolina
brooklyn regina eugene cleveland aurora beverly raleigh chelsea kingston preston india
china asia africa america israel lourdes montana dakota nevada indiana columbia
""")
)
MONTHS = frozenset(words("january february march april may june july august september october"))

# Nouns after a place's name ("the Denver branch").
PLACE_NOUNS = frozenset(
    words("""
store shop office branch line location locations airport area mall station hotel
restaurant county city center centre park bridge bay island hole market app site campus
hospital clinic warehouse depot stadium university college school
""")
)

# An address: the kinds of street, and what may follow one.
STREET_SUFFIXES = frozenset(
    words("""
street st avenue ave road rd lane ln drive dr boulevard blvd way court ct place pl terrace
close crescent parkway pkwy highway hwy circle cir square sq row grove gardens walk trail
parade mews alley plaza broadway loop hill ridge
""")
)
DIRECTIONS = frozenset(words("n s e w ne nw se sw north south east west"))
# Spelled out after a street ("Pennsylvania Avenue Northwest"): the four that name a quarter.
QUARTERS = frozenset(words("northeast northwest southeast southwest"))
UNIT_WORDS = frozenset(words("apt apartment unit suite flat ste floor fl"))

# Measures and counts: a number before one of these is no house number, card or phone.
MEASURES = frozenset(
    words("""
dollar dollars buck bucks cent cents pound pounds quid euro euros percent pence
second seconds sec secs minute minutes min mins hour hours hr hrs day days week weeks month
months year years time times am pm oclock users user people persons calls emails messages
items orders stars star points gb mb tb kb ghz inches inch feet foot ft miles mile km
kilometers meters metres lbs kg grams
""")
)


def _census(key: str, rank: int) -> set[str]:
    """The first ``rank`` names of one of the census lists that the ``names`` package ships."""
    import names as census

    with open(census.FILES[key]) as fh:
        text = fh.read()
    out = set()
    for i, line in enumerate(text.splitlines()):
        if i >= rank:
            break
        if line.strip():
            out.add(line.split()[0].lower())
    return out


@functools.cache
def first_names() -> frozenset[str]:
    """Given names, lowercase: those that are ordinary words (STOP) left out."""
    names = set(EXTRA_FIRST)
    for name, rank in FIRST_NAME_RANK.items():
        names |= _census(name, rank)
    return frozenset(names - STOP - BRANDS)


@functools.cache
def last_names() -> frozenset[str]:
    """Surnames, lowercase: ordinary words, brands and street words left out."""
    names = _census("last", LAST_NAME_RANK) | set(EXTRA_LAST)
    return frozenset(names - STOP - BRANDS - STREET_SUFFIXES - MEASURES)
