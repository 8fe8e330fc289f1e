"""Person names without a model: given names followed by a surname, titles before names.

The entity stage finds the persons its NER model (or, by default, the knowledge base) knows;
a customer writing "Please call Maria Garcia back" names someone no KB holds. This detector
finds such names from their shape:

- a given name from :data:`GIVEN_NAMES` followed by one or two capitalised words that look
  like surnames ("Maria Garcia", "Jean-Luc Picard", "Sean O'Brien"), unless the next word
  makes it a place or an organisation ("Jackson Street", "Victoria Station");
- a title ("Mr", "Mrs", "Ms", "Dr", "Prof"...) before one or two capitalised words;
- two capitalised words after a word that introduces a person ("customer", "patient:");
- a given name alone after a greeting or a sign-off ("Dear Anna,", "Thanks, Peter").

Its findings are of type ``PERSON`` (detector ``names``), with a lower score than the entity
stage's, which wins where both found a name.
"""

from __future__ import annotations

import re

from stream_aimass.privacy.detectors import Finding


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


GIVEN_NAMES = _words(
    """
    aaron abdul abigail adam adrian ahmed aisha alan albert alberto alejandro alex alexander
    alexandra alexis alfred ali alice alicia alina alison amanda amelia amir amit amy ana
    anastasia andrea andreas andrew andrei angela angelo anil anita ann anna anne annie
    anthony antoine antonio anya arjun arthur ashley aurelia barbara beatrice ben benjamin
    bernard beth betty bianca bob boris brandon brenda brian bruce bruno caitlin camila
    carl carla carlos carmen carol caroline carolyn catherine cecilia charles charlie
    charlotte chen chloe chris christian christina christine christopher claire clara claude
    claudia colin connor craig cynthia dana daniel daniela danielle david deborah denis
    dennis diana diane diego dimitri dmitri donald donna doris dorothy douglas dylan edward
    elena eli elias elizabeth ella ellen emily emma enrique eric erik ethan eva evelyn fatima
    felix fernando fiona francesca francesco francis francisco frank fred frederick gabriel
    gabriela gary george gerald gina giovanni giulia giuseppe gloria gordon greg
    gregory gustavo hannah hans harold harry hassan heather helen helena henry hiroshi hugo
    ian igor ingrid irene isaac isabel isabella ivan jacob jake james jamie jan jane janet
    janice jason javier jean jeff jeffrey jennifer jeremy jerry jessica joan joanna joe john
    jonathan jordan jorge jose joseph joshua juan judith julia julian julie juliet justin
    karen karl kate katherine kathleen kathryn katie keith kelly kenneth kevin kim kimberly
    klaus kumar kyle larry laura lauren lawrence leah lena leo leon leonardo luc liam lily
    linda lisa logan lorenzo louis louise lucas lucia lucy luis luisa luke lydia madison magdalena
    manuel marco marcus margaret maria marie marina mario marisa marta martha martin mary
    mason matthew matteo maurice maxim megan melissa mia michael michelle miguel mikhail
    mohammed monica muhammad nadia nancy naomi natalia natalie nathan neil nicholas nicola
    nicolas nicole nikolai nina noah nora olga oliver olivia omar oscar pablo pamela paola
    patricia patrick paul paula pedro peter philip philippe pierre pietro priya rachel rafael
    rahul raj ralph ramon raymond rebecca renee ricardo richard rita robert roberto roger
    ronald rosa ruth ryan sabrina sam samantha samuel sandra sara sarah scott sean sebastian
    sergei sergio sharon simon sofia sophia sophie stefan stefano stephanie stephen steven
    susan suzanne svetlana sylvia tanya teresa thomas tiffany timothy tom tomas tyler ursula
    valentina valerie vanessa vera veronica victor victoria vincent walter wei
    william xavier yuki yusuf zachary zoe
    """
)
TITLES = r"Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Professor|Sir|Dame|Madam|Mme|Mlle|Herr|Frau|Sr|Sra"
# Words after a name-like pair that make it a place or an organisation.
_NOT_PERSONS = _words(
    """
    street st avenue ave road rd lane boulevard square park station airport bridge hall
    hospital clinic university college school institute bank group inc ltd llc corp company
    foundation center centre church river lake mountain county city island hotel museum
    falls beach valley
    """
)
_SURNAME = r"(?:O'|Mc|Mac|D'|de\s|van\s|von\s|da\s|di\s|del\s|la\s)?[A-Z][a-z]+(?:-[A-Z][a-z]+)?"
_CAPITALISED = re.compile(r"\b[A-Z][a-z]+(?:-[A-Z][a-z]+)?")
_GIVEN_THEN_SURNAME = re.compile(
    rf"\b([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\s+({_SURNAME})(?:\s+({_SURNAME}))?(?!\w)"
)
_TITLED = re.compile(rf"\b(?:{TITLES})\.?\s+({_SURNAME})(?:\s+({_SURNAME}))?(?!\w)")
# A word that introduces a person ("customer", "patient: ", "signed by"), then two
# capitalised words: a name even when the given name is not in the list.
_INTRODUCED = re.compile(
    r"(?i:\b(?:name|customer|patient|client|employee|applicant|driver|contact|colleague|"
    r"member|caller|guest|passenger|cardholder|account holder|signed by|attn)\b)"
    rf"\s*:?\s+([A-Z][a-z]+(?:-[A-Z][a-z]+)?\s+{_SURNAME})(?!\w)"
)
_GREETED = re.compile(
    r"\b(?:Dear|Hi|Hello|Hey|Thanks|Thank you|Regards|Cheers|Best|Sincerely|Yours)"
    r",?\s+([A-Z][a-z]+)\b(?=\s*[,.!\n]|\s*$)"
)


def _given(word: str) -> bool:
    return word.lower() in GIVEN_NAMES or (
        "-" in word and all(w.lower() in GIVEN_NAMES for w in word.split("-"))
    )


def _after(text: str, end: int) -> str:
    m = re.match(r"\s+([A-Za-z]+)", text[end : end + 24])
    return m.group(1).lower() if m else ""


def names(text: str) -> list[Finding]:
    out: list[Finding] = []
    covered = 0  # a name found ends here: the words inside it start no other
    for word in _CAPITALISED.finditer(text):
        if word.start() < covered or not _given(word.group()):
            continue
        m = _GIVEN_THEN_SURNAME.match(text, word.start())
        if m is None:
            continue
        words = [w for w in (m.group(2), m.group(3)) if w]
        if any(w.lower() in _NOT_PERSONS for w in words) or _after(text, m.end()) in _NOT_PERSONS:
            continue
        out.append(Finding("PERSON", m.start(), m.end(), "names", 0.7))
        covered = m.end()
    for m in _INTRODUCED.finditer(text):
        if _after(text, m.end()) not in _NOT_PERSONS and not any(
            w.lower() in _NOT_PERSONS for w in m.group(1).split()
        ):
            out.append(Finding("PERSON", m.start(1), m.end(), "names", 0.7))
    for m in _TITLED.finditer(text):  # the title stays: "Mrs [PERSON]"
        out.append(Finding("PERSON", m.start(1), m.end(), "names", 0.75))
    for m in _GREETED.finditer(text):
        if _given(m.group(1)):
            out.append(Finding("PERSON", m.start(1), m.end(1), "names", 0.65))
    return out
