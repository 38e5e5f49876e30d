"""The reminders' sentences with placeholders, French then English (``server.reminders.wording``).

Kept apart from the translation machinery so that each stays a readable size; the French sentence
is the key, as in gettext, and ``{name:d}`` matches digits only. ``{name|singular|plural}`` is the
form that agrees with the count ``name``, as on the Rappels page (``server/static/reminders-i18n.js``):
the code writes it with ``plural``, never a « (s) » plural.
"""

from __future__ import annotations

import re

from server.web.privacy import OFF_MESSAGE as OFF_FR

OFF_EN = ("Household-level data (addresses, bins, contacts, reminders addressed to a household) is off: "
          "Trivue works at street level. An admin must enable the household level (server setting "
          "household_level: true or TRIVUE_HOUSEHOLD_LEVEL=true, then a restart), after the collectivité's "
          "deliberation and data protection impact assessment (DPIA).")

FORMS = re.compile(r"\{(\w+)\|([^|{}]*)\|([^|{}]*)\}")  # {n|levée|levées}


def plural(n: float, one: str, other: str, lang: str = "fr") -> str:
    """The form of a word that agrees with the count ``n``: French 0 and 1 singular, English 1 only."""
    return one if (abs(n) < 2 if lang == "fr" else n == 1) else other


def agree(text: str, values: dict[str, str], lang: str = "en") -> str:
    """``text`` with each ``{n|lift|lifts}`` replaced by the form for the count ``values[n]``."""
    return FORMS.sub(lambda m: plural(count(values[m[1]]), m[2], m[3], lang), text)


def count(value: str) -> float:
    """The number a placeholder's text holds ("1,5" is 1.5); 2, the plural, when it holds none."""
    try:
        return float(value.replace(",", ".").replace("−", "-"))
    except ValueError:
        return 2


# Sentences with placeholders: (French, English).
PHRASES: tuple[tuple[str, str], ...] = (
    # campaigns and review
    ("la campagne {id:d} n'existe pas", "campaign {id} does not exist"),
    ("l'élément {id:d} n'existe pas", "item {id} does not exist"),
    ("le plan ne propose aucun message pour les levées du {since} au {until} : rien à relire",
     "the plan proposes no message for the lifts from {since} to {until}: nothing to review"),
    ("le plan ne propose aucun message pour la rue {street:d} pour les levées du {since} au {until} : rien à relire",
     "the plan proposes no message for street {street} for the lifts from {since} to {until}: nothing to review"),
    ("{text} (période calme : {quiet})", "{text} (quiet period: {quiet})"),
    ("l'élément {id:d} est « {status} » : seuls les éléments à relire ou approuvés se relisent (un échec se "
     "renvoie avec « Réessayer »)",
     "item {id} is “{status}”: only items to review or approved can be reviewed (a failure is sent again "
     "with “Retry”)"),
    ("un refus demande un motif parmi {reasons} (reçu : {got})", "a rejection needs a reason among {reasons} "
     "(got: {got})"),
    ("la fin {until} est avant le début {since}", "the end {until} is before the start {since}"),
    ("le début {since} est après la fin {until}", "the start {since} is after the end {until}"),
    ("Value error, {text}", "Value error, {text}"),
    ("pas de fichier {name} dans la campagne {id:d}", "no file {name} in campaign {id}"),
    ("pas d'élément {item:d} en échec dans la campagne {id:d}", "no failed item {item} in campaign {id}"),
    ("niveau 0 : c'est le remerciement (template=thanks), pas le modèle {template} (niveaux 1 à 3)",
     "level 0 is the thank-you (template=thanks), not the {template} template (levels 1 to 3)"),
    # household level off (server.web.privacy)
    ("{what} : " + OFF_FR, "{what}: " + OFF_EN),
    ("Ce rappel est adressé à un foyer", "This reminder is addressed to a household"),
    ("Cette campagne contient des rappels adressés à des foyers ; rien n'a été renvoyé",
     "This campaign holds reminders addressed to households; nothing was sent again"),
    ("Cette campagne contient {n:d} {n|rappel|rappels} {n|approuvé|approuvés} {n|adressé|adressés} à des foyers ; "
     "rien n'a été envoyé",
     "This campaign holds {n} approved {n|reminder|reminders} addressed to households; nothing was sent"),
    ("Cette campagne contient des rappels approuvés adressés à des foyers ; rien n'a été envoyé",
     "This campaign holds approved reminders addressed to households; nothing was sent"),
    ("Ce document nomme des foyers", "This document names households"),
    ("Les courriers nomment des foyers", "Letters name households"),
    ("Les contacts des foyers ne sont pas consultables", "Households' contacts cannot be read"),
    ("Les oppositions des foyers ne sont pas consultables", "Households' opt-outs cannot be read"),
    ("L'import des contacts des foyers est refusé", "Importing households' contacts is refused"),
    # households, contacts import
    ("clé de foyer {key} : attendu address:<n° d'adresse> ou bin:<puce du bac>",
     "household key {key}: expected address:<address id> or bin:<bin tag>"),
    ("clé {key} : attendu address:<n°> ou bin:<puce>", "key {key}: expected address:<id> or bin:<tag>"),
    ("courriel {email} invalide", "invalid e-mail {email}"),
    ("courriel {email} : caractère non ASCII avant « @ » (adresse internationalisée, que le serveur d'envoi ne "
     "sait pas acheminer)", "e-mail {email}: a non-ASCII character before “@” (an internationalised address the "
     "sending server cannot route)"),
    ("{n:d} caractères, {size:d} au plus", "{n} characters, {size} at most"),
    ("nom de campagne de {n:d} caractères : 200 au plus", "campaign name of {n} characters: 200 at most"),
    ("--by {by} : 1 à 64 caractères imprimables", "--by {by}: 1 to 64 printable characters"),
    ("caractère de contrôle (tabulation, octet nul…)", "control character (tab, NUL byte…)"),
    ("aucune donnée pour le foyer {key} : rien n'a été effacé ni enregistré",
     "no data for household {key}: nothing was erased or recorded"),
    ("foyer {key} : ni contact, ni rappel, ni opposition, ni message refusé à effacer ; {n|sa|ses} {n:d} "
     "{n|levée est gardée|levées sont gardées} jusqu'à la fin de leur durée de conservation (photos comprises), pour "
     "la mesure du tri par rue, "
     "mission d'intérêt public (RGPD art. 17-3-b) : rien n'a été effacé ni enregistré",
     "household {key}: no contact, reminder, opt-out or refused message to erase; its {n} {n|lift is|lifts are} kept "
     "until the end of their retention period (photos included), for the street-level sorting measurement, a "
     "task in the public interest (GDPR art. 17(3)(b)): nothing was erased or recorded"),
    ("{imported:d} {imported|contact ajouté|contacts ajoutés}, {updated:d} mis à jour, {refused:d} "
     "{refused|ligne refusée|lignes refusées} (fichier "
     "{encoding}, séparateur « {delimiter} »)",
     "{imported} {imported|contact|contacts} added, {updated} updated, {refused} {refused|line|lines} refused "
     "({encoding} file, separator "
     "“{delimiter}”)"),
    ("{text} ; colonnes ignorées : {columns}", "{text}; columns ignored: {columns}"),
    ("ligne {n:d} : {problem}", "line {n}: {problem}"),
    ("encodage du fichier non reconnu : enregistrez-le en CSV UTF-8",
     "file encoding not recognised: save it as CSV UTF-8"),
    ("fichier vide : la première ligne doit nommer les colonnes (key;name;email;phone;postal_address)",
     "empty file: the first line must name the columns (key;name;email;phone;postal_address)"),
    ("colonne « key » (clé du foyer) absente de l'en-tête {header} ; colonnes attendues : {columns}",
     "column “key” (household key) missing from the header {header}; expected columns: {columns}"),
    ("{fields:d} champs pour {columns:d} {columns|colonne|colonnes} (séparateur « {delimiter} » dans une valeur non "
     "entre guillemets ?)",
     "{fields} fields for {columns} {columns|column|columns} (separator “{delimiter}” inside an unquoted value?)"),
    ("envoyez les contacts en {types}, pas {kind}", "send the contacts as {types}, not {kind}"),
    ('JSON attendu : {{"csv": "key,name,email,phone,postal_address\\n..."}}',
     'expected JSON {{"csv": "key,name,email,phone,postal_address\\n..."}}'),
    ("fichier CSV attendu dans le champ multipart « file »", "expected the CSV file in the multipart field “file”"),
    ("{source} : {error}", "{source}: {error}"),
    # phone numbers, postal addresses
    ("numéro {raw} : ni national (0…) ni international (+…)", "number {raw}: neither national (0…) nor "
     "international (+…)"),
    ("numéro {raw} : un numéro français a 10 chiffres", "number {raw}: a French number has 10 digits"),
    ("numéro {raw} : longueur impossible pour un numéro E.164", "number {raw}: impossible length for an E.164 number"),
    ("adresse {address} : il manque le code postal et la commune",
     "address {address}: the postcode and the commune are missing"),
    ("adresse {address} : {lines:d} lignes, La Poste en accepte 6 au plus",
     "address {address}: {lines} lines, La Poste accepts 6 at most"),
    # sending
    ("période calme ({reason}) : rien n'est envoyé avant sa fin", "quiet period ({reason}): nothing is sent "
     "before it ends"),
    ("élément {id:d}", "item {id}"),
    ("SMS envoyé du lundi au samedi de 8 h à 20 h, hors jours fériés",
     "SMS are sent Monday to Saturday, 8 am to 8 pm, except public holidays"),
    ("élément {id:d} : {why}", "item {id}: {why}"),
    ("élément {id:d} ({key}) : {why}", "item {id} ({key}): {why}"),
    ("envoi interrompu : le SMS est peut-être parti ; il n'est pas renvoyé automatiquement (au plus une fois). "
     "« Réessayer » l'enverra de nouveau.",
     "sending interrupted: the SMS may have gone out; it is not sent again automatically (at most once). "
     "“Retry” will send it again."),
    ("aucune coordonnée : ni courriel, ni téléphone, ni adresse postale pour ce foyer (un bac sans adresse a "
     "besoin de son adresse postale dans les contacts)",
     "no contact details: no e-mail, phone or postal address for this household (a bin without an address "
     "needs its postal address in the contacts)"),
    ("courrier impossible : {error}", "letter impossible: {error}"),
    ("canal {channel} indisponible pour ce foyer (coordonnée effacée ou canal retiré de la configuration)",
     "channel {channel} unavailable for this household (contact detail erased or channel removed from the "
     "configuration)"),
    ("{path} : fichier de règles introuvable", "{path}: rules file not found"),
    ("{what} : variable d'environnement {variable} absente", "{what}: environment variable {variable} is not set"),
    ("mot de passe SMTP", "SMTP password"),
    ("jeton de la passerelle SMS", "SMS gateway token"),
    ("SMTP {server} : {error}", "SMTP {server}: {error}"),
    ("la passerelle SMS a répondu {code:d} : {detail}", "the SMS gateway answered {code}: {detail}"),
    ("passerelle SMS {url} : {error}", "SMS gateway {url}: {error}"),
    ("modèle {name} inconnu : attendu l'un de {names}", "unknown template {name}: expected one of {names}"),
    ("modèle {name} introuvable", "template {name} not found"),
    ("modèle {name} : {kind} : {error}", "template {name}: {kind}: {error}"),
    ("polices DejaVu introuvables (installez fonts-dejavu-core) : les courriers en ont besoin pour le texte "
     "français", "DejaVu fonts not found (install fonts-dejavu-core): letters need them for French text"),
    # targeting reasons (server.reminders.plan, .targets)
    ("période calme : {reason}", "quiet period: {reason}"),
    ("le foyer a demandé à ne plus recevoir de rappels (opposition)",
     "the household asked for no more reminders (opt-out)"),
    ("exclu par la configuration (liste d'exclusion)", "excluded by the configuration (exclusion list)"),
    ("déjà en attente de revue dans la campagne {id:d}", "already waiting for review in campaign {id}"),
    ("délai entre deux messages : dernier envoi le {day} (délai {days:d} j)",
     "time between two messages: last sent on {day} ({days}-day wait)"),
    ("adresse sûre (confiance ≥ {pct})", "sure address (confidence ≥ {pct})"),
    ("{n:d} {n|levée contaminée|levées contaminées} sur {total:d} du {since} au {until} (seuil : {threshold:d}) ; "
     "erreurs : {cats} ; {how} → niveau {level:d} ({action})",
     "{n} contaminated {n|lift|lifts} out of {total} from {since} to {until} (threshold: {threshold}); errors: {cats}; "
     "{how} → level {level} ({action})"),
    ("{n:d} {n|levée contaminée|levées contaminées} sur {total:d} du {since} au {until} (seuil : {threshold:d}) ; "
     "erreurs : {cats} ; {how} ; message de niveau {previous:d} déjà envoyé le {day} → niveau {level:d} ({action})",
     "{n} contaminated {n|lift|lifts} out of {total} from {since} to {until} (threshold: {threshold}); errors: {cats}; "
     "{how}; level {previous} message already sent on {day} → level {level} ({action})"),
    ("{n:d} {n|levée contaminée|levées contaminées} sur {total:d} ({rate}, seuil {min_rate} dès {min_lifts:d} "
     "{min_lifts|levée|levées}, ou dès {min_unattributed:d} {min_unattributed|levée contaminée|levées contaminées} "
     "sans foyer sûr) dont {unattributed:d} sans foyer sûr → communication à la rue, niveau {level:d}",
     "{n} contaminated {n|lift|lifts} out of {total} ({rate}, threshold {min_rate} from {min_lifts} "
     "{min_lifts|lift|lifts}, or from {min_unattributed} contaminated {min_unattributed|lift|lifts} without a sure "
     "household), {unattributed} of them without a sure household → street communication, level {level}"),
    ("rue propre : {n:d} {n|levée|levées} {n|contaminée|contaminées} sur {total:d} ({rate})",
     "clean street: {n} contaminated {n|lift|lifts} out of {total} ({rate})"),
    ("rue en progrès : {rate0} → {rate} de levées contaminées ({lifts0:d} puis {lifts:d} {lifts|levée|levées})",
     "improving street: {rate0} → {rate} contaminated lifts ({lifts0} then {lifts} {lifts|lift|lifts})"),
    ("bac {bin}", "bin {bin}"),
    ("bac {bin} ({where})", "bin {bin} ({where})"),
    ("adresse {id:d}", "address {id}"),
    ("rue {id:d}", "street {id}"),
    # the effect (server.reminders.effect)
    ("Campagne pas encore envoyée : rien à mesurer.", "Campaign not sent yet: nothing to measure."),
    ("Trop peu de levées pour conclure : {n:d} {n|levée|levées} dans le plus petit groupe et période, il en faut au "
     "moins {min:d} (ou pas de rue comparable).",
     "Too few lifts to conclude: {n} {n|lift|lifts} in the smallest group and period, at least {min} are needed "
     "(or no comparable street)."),
    ("Pas de conclusion : les rues de comparaison ne ressemblent pas assez aux rues ciblées avant la "
     "campagne ({targeted} % contre {control} % de levées contaminées ; écart standardisé {smd}, au-delà du "
     "seuil de {max}).",
     "No conclusion: the comparison streets do not resemble the targeted streets enough before the campaign "
     "({targeted} % against {control} % contaminated lifts; standardised difference {smd}, beyond the "
     "threshold of {max})."),
    ("Pas de conclusion : l'équilibre des rues de comparaison ne peut pas être vérifié avant la campagne "
     "({what} : écart standardisé non défini, chaque groupe n'a qu'une seule valeur).",
     "No conclusion: the balance of the comparison streets cannot be checked before the campaign ({what}: "
     "standardised difference undefined, each group has a single value)."),
    ("Trop peu de rues pour estimer l'incertitude : pas de conclusion.",
     "Too few streets to estimate the uncertainty: no conclusion."),
    ("{did} points (IC 95 % {low} à {high})", "{did} points (95 % CI {low} to {high})"),
    ("Baisse de la contamination attribuable à la campagne : {span}.",
     "Decrease in contamination attributable to the campaign: {span}."),
    ("Hausse de la contamination dans les rues ciblées : {span}.",
     "Increase in contamination in the targeted streets: {span}."),
    ("Pas d'effet démontré : {span}, l'intervalle contient zéro.", "No effect shown: {span}, the interval "
     "contains zero."),
    ("différence de différences des taux de contamination (rues ciblées contre rues témoins appariées), "
     "intervalle de confiance à 95 % par bootstrap sur les rues (erreur type, loi de Student)",
     "difference in differences of contamination rates (targeted streets against matched comparison "
     "streets), 95 % confidence interval by bootstrap over streets (standard error, Student's t)"),
    # the CLI (server.reminders.cli, .command_line)
    ("Levées du {since} au {until} — niveau {level} — {targets:d} {targets|message|messages}, {skipped:d} "
     "{skipped|écarté|écartés}",
     "Lifts from {since} to {until} — {level} level — {targets} {targets|message|messages}, {skipped} set aside"),
    ("{text} — période calme : {quiet}", "{text} — quiet period: {quiet}"),
    ("foyer (adresses et bacs)", "household (addresses and bins)"),
    ("rue (niveau foyer désactivé : TRIVUE_HOUSEHOLD_LEVEL)", "street (household level off: TRIVUE_HOUSEHOLD_LEVEL)"),
    ("rue (niveau foyer désactivé)", "street (household level off)"),
    ("{n:d} {n|levée|levées} {n|contaminée|contaminées} sans foyer sûr (comptées pour leur rue), {m:d} sans rue.",
     "{n} contaminated {n|lift|lifts} without a sure household (counted for their street), {m} without a street."),
    ("campagne {id:d} « {name} » (niveau {level}) : {count:d} {count|élément|éléments} à relire (tableau de bord "
     "/rappels ou "
     "`trivue reminders review`)",
     "campaign {id} “{name}” ({level} level): {count} {count|item|items} to review (dashboard /rappels or "
     "`trivue reminders review`)"),
    ("{n:d} {n|élément|éléments} {n|adressé|adressés} à des foyers {n|masqué|masqués} : niveau foyer désactivé",
     "{n} {n|item|items} addressed to households hidden: household level off"),
    ("campagne {id:d} : aucun élément", "campaign {id}: no item"),
    ("élément {id:d} : {status}", "item {id}: {status}"),
    ("{n:d} {n|élément|éléments} remis à envoyer", "{n} {n|item|items} put back to send"),
    ("{n:d} fichiers PDF dans {folder}", "{n} PDF files in {folder}"),
    # trivue reminders print, /letters(.pdf) (server.reminders.mailroom)
    ("campagne {id:d} : aucun courrier à imprimer", "campaign {id}: no letter to print"),
    ("campagne {id:d} : aucun courrier à imprimer ({n:d} {n|écarté|écartés})", "campaign {id}: no letter to print "
                                                                               "({n} set "
     "aside)"),
    ("campagne {id:d} : aucun courrier à imprimer ({n:d} déjà {n|imprimé|imprimés})", "campaign {id}: no letter to "
                                                                                      "print "
     "({n} already printed)"),
    ("campagne {id:d} : aucun courrier à imprimer ({n:d} {n|écarté|écartés}) ({m:d} déjà {m|imprimé|imprimés})",
     "campaign {id}: no letter to print ({n} set aside) ({m} already printed)"),
    ("{n:d} {n|courrier|courriers} déjà {n|imprimé|imprimés} {n|laissé|laissés} de côté", "{n} {n|letter|letters} "
                                                                                          "already printed left out"),
    ("{n:d} {n|courrier|courriers} déjà {n|imprimé|imprimés} {n|imprimé|imprimés} de nouveau (--new-only pour les "
     "écarter)",
     "{n} {n|letter|letters} already printed, printed again (--new-only to leave them out)"),
    ("{file} : {n:d} {n|courrier|courriers}, {pages:d} {pages|page|pages} dont {blank:d} {blank|blanche|blanches}, "
     "{sheets:d} {sheets|feuille|feuilles} recto verso",
     "{file}: {n} {n|letter|letters}, {pages} {pages|page|pages} of which {blank} blank, {sheets} "
     "{sheets|sheet|sheets} printed on both sides"),
    ("{file} : {n:d} {n|courrier|courriers}, {pages:d} {pages|page|pages} dont {blank:d} {blank|blanche|blanches}, "
     "{sheets:d} {sheets|feuille|feuilles} recto seul",
     "{file}: {n} {n|letter|letters}, {pages} {pages|page|pages} of which {blank} blank, {sheets} "
     "{sheets|sheet|sheets} printed on one side"),
    ("{postcode:d} {commune} : {n:d} {n|courrier|courriers}, à partir du n° {first:d}",
     "{postcode} {commune}: {n} {n|letter|letters}, from no. {first}"),
    ("envoyés : {sent}", "sent: {sent}"),
    ("aucun (rien d'approuvé ?)", "none (nothing approved?)"),
    ("{key} : ne recevra plus de rappels", "{key}: will receive no more reminders"),
    ("{key} : recevra de nouveau des rappels, à partir de la prochaine campagne",
     "{key}: will receive reminders again, from the next campaign"),
    ("aucune opposition enregistrée pour le foyer {key} : rien n'a été levé (vérifiez la clé)",
     "no opt-out recorded for household {key}: nothing was lifted (check the key)"),
    ("{key} : Trivue ne connaît encore rien de ce foyer (ni adresse, ni bac au registre, ni levée, ni contact, ni "
     "rappel) : opposition enregistrée d'avance, vérifiez la clé",
     "{key}: Trivue knows nothing of this household yet (no address, no bin in the registry, no lift, no contact, "
     "no reminder): opposition recorded in advance, check the key"),
    ("{key} : {contacts:d} {contacts|contact|contacts} {contacts|supprimé|supprimés}, {items:d} "
     "{items|élément|éléments} {items|anonymisé|anonymisés}, {letters:d} {letters|courrier|courriers} "
     "{letters|supprimé|supprimés}, {dead:d} {dead|message|messages} {dead|refusé|refusés} {dead|vidé|vidés}, "
     "{sheets:d} {sheets|feuille|feuilles} de route {sheets|réécrite|réécrites} ou {sheets|supprimée|supprimées}",
     "{key}: {contacts} {contacts|contact|contacts} deleted, {items} {items|item|items} anonymised, {letters} "
     "{letters|letter|letters} deleted, {dead} "
     "refused {dead|message|messages} emptied, {sheets} route {sheets|sheet|sheets} rewritten or deleted"),
    ("feuille de route introuvable : {path} (chemin relatif au dossier du serveur, cherché depuis {cwd})",
     "route sheet not found: {path} (a path relative to the server's folder, looked for from {cwd})"),
    ("feuille de route introuvable : {path}", "route sheet not found: {path}"),
    ("feuille de route hors du dossier du serveur, non réécrite : {path}", "route sheet outside the server's "
     "folder, not rewritten: {path}"),
    ("courrier introuvable : {path} (chemin relatif au dossier du serveur, cherché depuis {cwd} : lancez la "
     "commande depuis ce dossier)", "letter not found: {path} (a path relative to the server's folder, looked for "
     "from {cwd}: run the command from that folder)"),
    ("courrier introuvable : {path}", "letter not found: {path}"),
    ("courrier hors du dossier du serveur, non effacé : {path}", "letter outside the server's folder, not "
     "deleted: {path}"),
    ("{file} : {n:d} {n|fausse|fausses} {n|détection|détections}", "{file}: {n} false {n|detection|detections}"),
    ("{file} : {lifts:d} {lifts|levée|levées}, {items:d} {items|rappel|rappels}, {contacts:d} "
     "{contacts|contact|contacts}, {dead:d} {dead|message|messages} {dead|refusé|refusés}",
     "{file}: {lifts} {lifts|lift|lifts}, {items} {items|reminder|reminders}, {contacts} {contacts|contact|contacts}, "
     "{dead} refused {dead|message|messages}"),
    ("--since {since} est après --until {until} : période vide", "--since {since} is after --until {until}: "
     "empty period"),
    ("fichier illisible ({reason}) : enregistrez-le en UTF-8", "unreadable file ({reason}): save it as UTF-8"),
    ("{value} n'est pas une date (AAAA-MM-JJ)", "{value} is not a date (YYYY-MM-DD)"),
    ("Campagne {id:d} : {text}", "Campaign {id}: {text}"),
    # trivue demo-effect (trivue.demo.effect)
    ("simulation des collectes et enregistrement des levées…", "simulating the collections and storing the lifts…"),
    ("mesure de l'effet (appariement, bootstrap)…", "measuring the effect (matching, bootstrap)…"),
    ("Campagne simulée : {lifts:d} levées dans {streets:d} rues de Rennes, {weeks:d} semaines de collectes ; avis "
     "déposé dans {treated:d} rues le {day} à {time} UTC ; {drop} d'erreurs en moins chez les foyers atteints, "
     "{delay} {delay|jour|jours} après.",
     "Simulated campaign: {lifts} lifts in {streets} Rennes streets, {weeks} weeks of collections; notice dropped "
     "in {treated} streets on {day} at {time} UTC; {drop} fewer errors in the households reached, {delay} "
     "{delay|day|days} "
     "later."),
    ("Effet simulé (la vérité) : {did} points sur le taux de contamination des rues ciblées.",
     "Simulated effect (the truth): {did} points on the targeted streets' contamination rate."),
    ("L'intervalle contient l'effet simulé.", "The interval contains the simulated effect."),
    ("L'intervalle ne contient pas l'effet simulé (cela arrive dans 5 % des cas environ).",
     "The interval does not contain the simulated effect (this happens about 5 % of the time)."),
    ("Graphique : {plot} ; rapport : {report} ; tableau : {table}", "Plot: {plot}; report: {report}; table: {table}"),
    ("Sur la page Rappels : TRIVUE_DATABASE_URL={url} trivue server --dev --no-ingest, puis /rappels",
     "On the Reminders page: TRIVUE_DATABASE_URL={url} trivue server --dev --no-ingest, then /rappels"),
    ("--drop {value} : attendu une part entre 0 et 1 (0,4 = 40 % d'erreurs en moins)",
     "--drop {value}: expected a share between 0 and 1 (0.4 = 40 % fewer errors)"),
    ("--delay-days {value} : attendu 0 ou plus", "--delay-days {value}: expected 0 or more"),
    ("--weeks {value} : attendu de 1 à 12", "--weeks {value}: expected 1 to 12"),
    ("{path} existe déjà : --replace pour le remplacer, ou un autre --out",
     "{path} exists already: --replace to replace it, or another --out"),
)
