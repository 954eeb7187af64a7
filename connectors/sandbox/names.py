"""Names for the sandbox portfolio: word lists, company names, Salesforce-shaped ids.

Pure. 151 prefixes x 80 nouns give over 12,000 distinct company names before qualifiers.
"""

from __future__ import annotations

import random


def _words(text: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in text.split(",") if w.strip())


COMPANY_PREFIXES = _words(
    """
Acme, Northwind, Blue Ridge, Summit, Harbor, Pioneer, Cedar, Granite, Evergreen, Silverline,
Redwood, Lighthouse, Keystone, Meridian, Horizon, Atlas, Beacon, Copperfield, Crescent, Falcon,
Frontier, Goldcrest, Ironbridge, Juniper, Kestrel, Lakeshore, Maple, Mosaic, Nimbus, Oakmont,
Orion, Pinnacle, Quarry, Riverbend, Sagebrush, Sequoia, Starling, Tidewater, Trident,
Union Square, Vanguard, Willow, Westbrook, Yellowstone, Zenith, Alder, Aspen, Bayview,
Birchwood, Bluebird, Brightwater, Canyon, Cascade, Clearwater, Cobalt, Compass, Coral,
Cornerstone, Cypress, Driftwood, Eastgate, Elmstead, Emberly, Fairhaven, Fieldstone, Firefly,
Foxglove, Glacier, Greenleaf, Halcyon, Hawthorne, Heron, Highland, Hollow Creek, Indigo,
Ivory Coast, Jadestone, Kingsley, Lantern, Larkspur, Linden, Lodestar, Magnolia, Marigold,
Millbrook, Monarch, Moonstone, Northgate, Northstar, Oceanic, Old Mill, Osprey, Palisade,
Parkside, Pebble Beach, Peregrine, Pinecrest, Prairie, Quicksilver, Rainier, Raven, Ridgeline,
Rockport, Rosewood, Saffron, Saltmarsh, Sandstone, Sapphire, Shoreline, Sierra, Silver Oak,
Skyline, Southport, Sparrow, Spruce, Stonegate, Sunridge, Sycamore, Tamarack, Teal, Thistle,
Timberline, Topaz, Trailhead, Tundra, Twin Rivers, Upland, Valley, Verdant, Vista, Wavecrest,
Whitewater, Wildflower, Windmill, Winterberry, Wolfpine, Woodland, Amberly, Arcadia,
Bellwether, Bramble, Calypso, Drumlin, Everly, Galena, Hartwell, Kinetic, Luminary, Marlowe,
Nautilus, Obsidian
"""
)

COMPANY_NOUNS = _words(
    """
Logistics, Health, Analytics, Foods, Energy, Robotics, Software, Labs, Freight, Dental,
Insurance, Capital, Realty, Media, Systems, Biotech, Manufacturing, Consulting, Outfitters,
Brewing, Pharma, Security, Learning, Travel, Legal, Retail, Marine, Aerospace, Farms, Solar,
Networks, Payments, Clinics, Construction, Studios, Textiles, Motors, Telecom, Water,
Hospitality, Partners, Works, Supply, Medical, Fitness, Bank, Credit Union, Staffing,
Architects, Engineering, Packaging, Chemicals, Mining, Apparel, Cosmetics, Games, Publishing,
Pet Care, Home Care, Veterinary, Dynamics, Cloud, Data, Furniture, Hotels, Airlines, Utilities,
Diagnostics, Therapeutics, Ventures, Trading, Shipping, Foundry, Nutrition, Wellness, Agritech,
Recycling, Events, Printing, Fintech
"""
)

FIRST_NAMES = _words(
    """
Alex, Amara, Ben, Carla, Chloe, Daniel, Deepa, Diego, Elena, Ethan, Fatima, Felix, Grace,
Hannah, Hiro, Isaac, Ines, Jack, Jasmine, Jonas, Kara, Kofi, Laura, Leo, Lina, Lucas, Maya,
Mateo, Mei, Nadia, Noah, Olivia, Omar, Paula, Peter, Quinn, Rachel, Raj, Rosa, Sam, Sara, Sean,
Tara, Theo, Uma, Victor, Wen, Yara, Yusuf, Zoe
"""
)

LAST_NAMES = _words(
    """
Adams, Alvarez, Banerjee, Becker, Brooks, Campbell, Castro, Chen, Cohen, Diaz, Dubois, Edwards,
Evans, Fischer, Garcia, Gupta, Hansen, Hughes, Ibrahim, Jensen, Kim, Kowalski, Larsen, Lopez,
Mehta, Meyer, Moreau, Murphy, Nakamura, Nguyen, Olsen, Park, Patel, Pereira, Reyes, Rossi,
Santos, Schmidt, Singh, Sullivan, Tanaka, Torres, Turner, Vasquez, Walsh, Weber, Williams,
Wong, Yilmaz, Zhang
"""
)

CHAMPION_TITLES = _words(
    """
VP Operations, Director of Customer Operations, Head of Revenue Operations, IT Director,
Operations Manager, Head of Support, Director of Analytics
"""
)

OTHER_TITLES = _words(
    """
Engineering Manager, Business Analyst, System Administrator, CFO, Procurement Manager,
Team Lead, Product Manager, Office Manager, Data Analyst, COO, Finance Manager
"""
)

QUALIFIERS = _words("Group, Holdings, International, Partners, West, East, North, South")

# enterprise accounts go to the first two CSMs, mid-market to the next three, SMB to the rest
CSMS = tuple(
    f"{n}@healthbot-sandbox.test"
    for n in _words(
        "dana.ruiz, marcus.chen, priya.natarajan, tom.okafor, sofia.lindqvist, jamal.wright, "
        "emily.novak, kenji.watanabe"
    )
)

TICKET_SUBJECTS = {
    "urgent": _words(
        """
Production outage: dashboard not loading, All users locked out after SSO change,
Data sync stopped overnight, API returning 500 errors, Reports show wrong totals
"""
    ),
    "high": _words(
        """
Export to CSV times out, Integration with CRM failing intermittently,
Slow page loads for EU users, Webhook deliveries delayed, Permissions not applied
"""
    ),
    "normal": _words(
        """
How do I add a custom field?, Cannot invite new user, Question about API limits,
Scheduled report not received, Need help configuring alerts, Bulk import errors
"""
    ),
    "low": _words(
        """
Question about invoice, Feature request: dark mode, Update billing contact,
Typo in email template, Request for training materials
"""
    ),
}

TOUCH_SUBJECTS = {
    "call": _words("Check-in call, Adoption review, Support follow-up, Renewal discussion"),
    "meeting": _words("Quarterly business review, Roadmap session, Training workshop"),
    "email": _words("Monthly check-in, New feature announcement, Usage report, Follow-up"),
    "onboarding": _words("Onboarding kickoff, Onboarding session, Implementation check-in"),
    "executive": _words("Executive business review, Executive sponsor sync"),
    "rescue": _words("Escalation follow-up, Recovery plan review, Incident debrief"),
}


def company_names(n: int, seed: int) -> list[str]:
    """`n` distinct company names; name i depends on `seed` only, not on `n`."""
    base = [f"{p} {q}" for p in COMPANY_PREFIXES for q in COMPANY_NOUNS]
    random.Random(f"names:{seed}").shuffle(base)
    names, rnd = base[:n], 0
    while len(names) < n:  # past the base list: "Acme Logistics Group", ... "... Group 2"
        q, cycle = QUALIFIERS[rnd % len(QUALIFIERS)], rnd // len(QUALIFIERS)
        names += [f"{b} {q}" + (f" {cycle + 1}" if cycle else "") for b in base[: n - len(names)]]
        rnd += 1
    return names


_SFID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def salesforce_id(prefix: str, n: int) -> str:
    """A Salesforce-shaped 18-char id: `prefix` (3 chars) + "SB" + number, then the case-safe
    checksum suffix Salesforce computes from the 15-char id."""
    base = f"{prefix}SB{n:010d}"
    chunks = (base[k : k + 5] for k in (0, 5, 10))
    bits = (sum(1 << j for j, c in enumerate(chunk) if c.isupper()) for chunk in chunks)
    return base + "".join(_SFID_SUFFIX[b] for b in bits)
