/* dashboard.js: the script of dashboard.html (a file of its own, so the
 * page's Content-Security-Policy can allow only 'self'). */
"use strict";
(function () {
	// /dashboard/{org}: the organization is the page's own path.
	var org = decodeURIComponent(location.pathname.split("/").filter(Boolean)[1] || "");
	var key = "telehook.token." + org;
	var api = "/api/v1/organizations/" + encodeURIComponent(org);
	var REFRESH_MS = 30000;
	var timer = null;
	var $ = function (id) { return document.getElementById(id); };
	var typeNames = {
		call_started: "Call started", call_ended: "Call ended",
		call_missed: "Missed call", sms_reply: "SMS received",
		sms_sent: "SMS sent", voicemail: "Voicemail",
		recording_ready: "Recording", inbound_call: "Inbound call",
		campaign_progress: "Campaign"
	};

	// The token arrives once in the fragment (#token=…), leaves the
	// address bar at once, and is kept in this browser.
	var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
	if (m) {
		try { localStorage.setItem(key, decodeURIComponent(m[1])); } catch (e) {}
		history.replaceState(null, "", location.pathname + location.search);
	}
	function token() {
		try { return localStorage.getItem(key); } catch (e) { return null; }
	}

	function status(text, error) {
		$("status").textContent = text;
		$("status").className = error ? "error" : "";
	}

	function ask(why) {
		clearTimeout(timer);
		$("board").hidden = true;
		$("login").hidden = false;
		$("login-why").textContent = why;
		status(why, true);
		$("token").focus();
	}

	function get(path, method) {
		return fetch(api + path, {
			method: method || "GET",
			headers: { "Authorization": "Bearer " + token() },
			cache: "no-store"
		}).then(function (r) {
			if (r.status === 401) throw { auth: "This token was not accepted. Enter a valid dashboard token." };
			if (r.status === 404) throw { auth: "There is no dashboard here for this token." };
			if (!r.ok) throw new Error("the server answered " + r.status);
			return r.json();
		});
	}

	function when(iso) {
		var d = new Date(iso);
		return d.toLocaleString([], { month: "short", day: "numeric",
			hour: "2-digit", minute: "2-digit" });
	}

	function item(list, time, type, text) {
		var li = document.createElement("li");
		var t = document.createElement("time");
		t.dateTime = time;
		t.textContent = when(time);
		var ty = document.createElement("span");
		ty.className = "type";
		ty.textContent = type;
		var s = document.createElement("span");
		s.className = "summary";
		s.textContent = text;
		li.append(t, ty, s);
		list.append(li);
		return li;
	}

	function empty(list, text) {
		var li = document.createElement("li");
		li.className = "empty";
		li.textContent = text;
		list.append(li);
	}

	function render(d, notes) {
		var k = d.kpis;
		Object.keys(k).forEach(function (name) {
			document.querySelectorAll('[data-kpi="' + name + '"]').forEach(function (el) {
				el.textContent = String(k[name]);
			});
		});
		var s = k.avg_call_seconds;
		$("avg-pretty").textContent = Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
		$("ai-rate").textContent = k.ai_calls_analyzed ?
			Math.round(100 * k.ai_calls_successful / k.ai_calls_analyzed) + "%" : "–";
		$("month").textContent = d.month + " · " + d.timezone;

		var list = $("activity");
		list.replaceChildren();
		d.recent_activity.forEach(function (a) {
			item(list, a.occurred_at, typeNames[a.type] || a.type, a.summary);
		});
		if (!d.recent_activity.length) empty(list, "No activity yet.");

		var nl = $("notifications");
		nl.replaceChildren();
		notes.notifications.forEach(function (n) {
			var li = item(nl, n.created_at, n.title, n.message);
			var b = document.createElement("button");
			b.type = "button";
			b.textContent = "Mark read";
			b.setAttribute("aria-label", "Mark read: " + n.message);
			b.addEventListener("click", function () {
				b.disabled = true;
				get("/notifications/" + encodeURIComponent(n.id) + "/read", "POST")
					.then(load, fail);
			});
			li.append(b);
		});
		if (!notes.notifications.length) empty(nl, "No unread notifications.");
		$("login").hidden = true;
		$("board").hidden = false;
		status("Updated " + new Date().toLocaleTimeString());
		document.body.dataset.state = "ready";
	}

	function fail(e) {
		if (e && e.auth) {
			try { localStorage.removeItem(key); } catch (x) {}
			document.body.dataset.state = "bad-token";
			ask(e.auth);
			return;
		}
		document.body.dataset.state = "error";
		status("Could not refresh: " + (e && e.message ? e.message : e) +
			". Trying again shortly.", true);
		timer = setTimeout(load, REFRESH_MS);
	}

	function load() {
		clearTimeout(timer);
		if (!token()) {
			document.body.dataset.state = "no-token";
			ask("Enter the dashboard token you were given.");
			return;
		}
		Promise.all([get("/dashboard"), get("/notifications?unread=1")])
			.then(function (r) {
				render(r[0], r[1]);
				timer = setTimeout(load, REFRESH_MS);
			}, fail);
	}

	$("login").addEventListener("submit", function (ev) {
		ev.preventDefault();
		try { localStorage.setItem(key, $("token").value.trim()); } catch (e) {}
		$("token").value = "";
		status("Loading…");
		load();
	});
	document.addEventListener("visibilitychange", function () {
		if (!document.hidden && token()) load();
	});
	load();
})();
